import json
import subprocess
import sys

import pytest


def alphaloop(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_bad_recipe_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[stages]]\nkind = "imitate"\nsteps = -3\n')
    result = alphaloop("run", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "stages.0.steps" in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["run", "missing.toml"], "recipe file not found"),
    (["eval", "nowhere"], "not a run directory"),
    (["report", "nowhere"], "no summary.json"),
    (["run", "recipes/smoke.toml", "--set", "stages.9.steps=1"], "not an index"),
])
def test_user_mistakes_are_clear(repo_root, args, needle):
    result = alphaloop(*args, cwd=repo_root)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_envs_lists_arithmetic_knobs():
    result = alphaloop("envs")
    assert result.returncode == 0, result.stderr
    assert "arithmetic" in result.stdout and "misconception_rate" in result.stdout


def test_a_mistake_found_when_a_stage_starts_leaves_no_run_directory(repo_root, tmp_path):
    """A model directory that passes the pre-flight (it has a config.json) but cannot be loaded fails
    when the first stage starts; the run directory this command made is taken away again, so the
    fixed command can simply be rerun with the same --out."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "no-such-architecture"}')
    out = tmp_path / "run"
    result = alphaloop("run", f"{repo_root}/recipes/smoke.toml", "--out", str(out), "--no-progress",
                       "--set", f"policy.pretrained={model}")
    assert result.returncode == 2, result.stderr
    assert "policy.pretrained" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_eval_writes_a_new_file_every_time_and_ctrl_c_says_how_to_resume(repo_root, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    tiny = ["--set", "stages.0.steps=4", "--set", "stages.0.eval_every=2", "--set", "stages.1.steps=1",
            "--set", "stages.2.problems=4"]
    result = alphaloop("run", f"{repo_root}/recipes/smoke.toml", "--out", str(out), "--no-progress", *tiny)
    assert result.returncode == 0, result.stderr
    first = alphaloop("eval", str(out), "--problems", "3")
    second = alphaloop("eval", str(out), "--problems", "3", "--policy", "expert")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    files = sorted(p.name for p in (out / "evals").iterdir())
    assert files == ["eval-001.json", "eval-002.json"]
    assert json.loads((out / "evals" / "eval-001.json").read_text())[0]["policy"] == "rl"
    assert json.loads((out / "evals" / "eval-002.json").read_text())[0]["policy"] == "expert"

    again = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "alphaloop.cli", "run", f"{repo_root}/recipes/smoke.toml",
                             "--out", str(again), "--no-progress", "--set", "stages.0.steps=100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (again / "metrics.jsonl").exists():
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()   # never leave a training process behind, whatever happened
    assert proc.returncode == 130, stderr
    assert f"alphaloop run --resume {again}" in stderr and "Traceback" not in stderr
