"""End to end: the smoke recipe runs, is reproducible, and resumes after kill -9 / corruption."""

import json
import os
import shutil
from pathlib import Path

import pytest

from alphaloop import runner
from alphaloop.recipe import load_recipe
from alphaloop.runlog import WALL_CLOCK_KEYS

TIME_KEYS = WALL_CLOCK_KEYS


def run_smoke(repo_root, out, overrides=()):
    recipe = load_recipe(f"{repo_root}/recipes/smoke.toml", list(overrides))
    run_dir = runner.prepare_run_dir(recipe, out)
    return runner.run(recipe, run_dir, show_progress=False), run_dir


def metrics_without_time(run_dir):
    records = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


@pytest.fixture(scope="module")
def reference(repo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    summary, run_dir = run_smoke(repo_root, out)
    return summary, run_dir


def test_smoke_run_writes_report_card(reference):
    summary, run_dir = reference
    assert summary["status"] == "complete"
    for name in ("recipe.toml", "metrics.jsonl", "summary.json", "timings.json"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    final_evals = [e for e in summary["evals"] if e["stage"] == "eval"]
    combos = {(e["policy"], e["split"], e["decoder"]) for e in final_evals}
    assert ("expert", "test", "greedy") in combos and ("imitate", "heldout", "pass@4") in combos
    assert all(0.0 <= record["metrics"]["accuracy"] <= 1.0 for record in final_evals)  # plumbing only:
    # the smoke policy is too small to learn; test_learning.py recomputes a trained one's accuracy
    policy_dir = run_dir / summary["stages"][0]["policy_dir"]
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (policy_dir / name).is_file()


def test_same_seed_gives_identical_summary(repo_root, reference, tmp_path):
    summary, run_dir = reference
    again, again_dir = run_smoke(repo_root, tmp_path / "again")
    assert (again_dir / "summary.json").read_text() == (run_dir / "summary.json").read_text()
    assert metrics_without_time(again_dir) == metrics_without_time(run_dir)


def test_resume_after_kill_9_matches(repo_root, reference, tmp_path, kill_then_resume):
    _, ref_dir = reference
    out = tmp_path / "killed"
    kill_then_resume(f"{repo_root}/recipes/smoke.toml", out, "0-imitate", settle=0.3, must_interrupt=False,
                     deadline_s=120)
    assert (out / "summary.json").read_text() == (ref_dir / "summary.json").read_text()
    assert metrics_without_time(out) == metrics_without_time(ref_dir)


def test_resume_skips_corrupted_checkpoint(repo_root, reference, tmp_path):
    _, ref_dir = reference
    run_dir = tmp_path / "corrupt"
    shutil.copytree(ref_dir, run_dir)
    stage = run_dir / "stages" / "0-imitate"
    # Pretend the run died after writing its checkpoints but before finishing the stage,
    # and that the newest checkpoint was damaged on disk.
    (stage / "result.json").unlink()
    shutil.rmtree(stage / "policy")
    for later in (run_dir / "stages").iterdir():
        if not later.name.startswith("0-"):
            shutil.rmtree(later)
    (run_dir / "summary.json").unlink()
    newest = sorted((stage / "checkpoints").iterdir())[-1]
    weights = newest / "policy" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16] + b"\0" * 16)
    recipe = runner.load_run_recipe(run_dir)
    summary = runner.run(recipe, run_dir, show_progress=False)
    assert json.dumps(summary, sort_keys=True, indent=2) + "\n" == (ref_dir / "summary.json").read_text()
    assert metrics_without_time(run_dir) == metrics_without_time(ref_dir)


def test_oversubscription_warning_names_the_fix():
    from alphaloop.runner import warn_if_oversubscribed

    assert warn_if_oversubscribed(2, cores=2, busy=0.1) is None
    assert warn_if_oversubscribed(1, cores=2, busy=1.2) is None
    message = warn_if_oversubscribed(2, cores=2, busy=1.2)
    assert message and "threads = 2" in message and "--set threads=1" in message
    assert "--set threads=1" in warn_if_oversubscribed(4, cores=2, busy=3.0)  # never suggests 0


def test_busy_cores_reads_the_cpu_time_between_two_samples():
    from alphaloop.runner import busy_cores

    class Stat:                      # /proc/stat's first line, read twice: 1 of 4 time units idle
        def __init__(self) -> None:
            self.lines = iter(["cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 ...", "cpu  115 0 115 810 0 0 0 0 0 0\n"])

        def read_text(self) -> str:
            return next(self.lines)

    assert busy_cores(window=0.0, stat=Stat()) == pytest.approx((os.cpu_count() or 1) * 0.75)


def test_threads_auto_is_fixed_once_when_the_run_starts(repo_root, tmp_path, monkeypatch):
    """threads = "auto" resolves to the free cores when the run starts; the number is written to the
    run's recipe.toml and summary.json, so a resume (or `--set threads=N`) repeats it exactly."""
    assert runner.free_cores(busy=1.2, cores=2) == 1
    assert runner.free_cores(busy=0.1, cores=2) == 2
    assert runner.free_cores(busy=5.0, cores=2) == 1          # never 0
    recipe = load_recipe(f"{repo_root}/recipes/smoke.toml", ["threads=auto", "stages.0.steps=2",
                                                               "stages.1.steps=1", "stages.2.problems=2"])
    assert recipe.threads == "auto"
    assert runner.resolve_threads(recipe, busy=1.0).threads == max((os.cpu_count() or 1) - 1, 1)
    monkeypatch.setattr(runner, "busy_cores", lambda: 0.0)
    run_dir = runner.prepare_run_dir(recipe, tmp_path / "run")
    assert f"threads = {os.cpu_count() or 1}\n" in (run_dir / "recipe.toml").read_text()
    monkeypatch.setattr(runner, "busy_cores", lambda: 99.0)   # later load does not change this run's count
    summary = runner.run(recipe, run_dir, show_progress=False)
    assert summary["threads"] == (os.cpu_count() or 1)
    assert runner.load_run_recipe(run_dir).threads == summary["threads"]


def test_train_precision_auto_is_bfloat16_only_where_it_is_native():
    import torch

    from alphaloop.policies.nets import native_bf16, training_precision

    cpu = torch.device("cpu")
    assert training_precision("auto", cpu) == ("bfloat16" if native_bf16() else "float32")
    assert training_precision("float32", cpu) == "float32"
    assert training_precision("bfloat16", cpu) == "bfloat16"          # an explicit choice is kept
    assert training_precision("auto", torch.device("cuda")) == "bfloat16"


def test_a_onednn_isa_cap_below_bfloat16_means_float32(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN emulate bfloat16 even on a CPU that has it: auto then
    trains and searches in float32, as on an AVX2-only CPU."""
    import torch

    from alphaloop.policies import nets

    cpu = torch.device("cpu")
    try:
        for cap in ("AVX2", "avx512_core", "AVX2_VNNI"):
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
            nets.native_bf16.cache_clear()
            assert not nets.native_bf16(), cap
            assert nets.training_precision("auto", cpu) == "float32"
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        monkeypatch.setenv("DNNL_MAX_CPU_ISA", "SSE41")                # the older name
        nets.native_bf16.cache_clear()
        assert not nets.native_bf16()
        monkeypatch.setenv("DNNL_MAX_CPU_ISA", "avx512_core_amx")      # a cap that keeps bfloat16
        nets.native_bf16.cache_clear()
        uncapped = nets.native_bf16()
        monkeypatch.delenv("DNNL_MAX_CPU_ISA")
        nets.native_bf16.cache_clear()
        assert uncapped == nets.native_bf16()                          # = what the CPU itself offers
    finally:
        nets.native_bf16.cache_clear()
