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
