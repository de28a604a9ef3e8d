"""The reward_model stage: it learns the labellers' preferences (fixed seed, seconds), reports the
biases it learned, ensembles, and resumes after kill -9 to the same summary."""

import json

import pytest

from alphaloop import runner
from alphaloop.recipe import validate_recipe

ARCH = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2, "intermediate_size": 64}


def recipe(stage: dict, seed: int = 0):
    return validate_recipe({"name": "rm", "seed": seed, "threads": 1, "env": {"name": "assistant"},
                            "policy": {"arch": ARCH},
                            "stages": [{"kind": "reward_model", "source": "variants", "pairs": 400, "test_pairs": 150,
                                        "steps": 150, "batch_size": 32, "lr": 3e-3, "eval_every": 150,
                                        "checkpoint_every": 50, **stage}]})


def test_reward_model_learns_held_out_preferences(tmp_path):
    r = recipe({})
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    before, after = [e["metrics"] for e in summary["evals"] if e["split"] == "test-pairs"]
    # measured seeds 0-2: held-out pair accuracy 0.37-0.60 at start -> 0.70-0.81 after 150 steps
    assert after["accuracy"] >= 0.62 and after["accuracy"] >= before["accuracy"] + 0.15, (before, after)
    assert after["bonus_wrong"] < 0 and after["bonus_polite"] > 0   # wrong is worse; the labellers' bias learned
    run_dir = tmp_path / "run"
    lines = (run_dir / "stages" / "0-reward_model" / "pairs-train.jsonl").read_text().splitlines()
    assert len(lines) == 400 and set(json.loads(lines[0])) >= {"prompt", "chosen", "rejected"}
    assert (run_dir / summary["stages"][0]["reward_model_dir"] / "reward_model.json").is_file()


def test_stage_trains_an_ensemble_from_a_pair_file(tmp_path):
    from alphaloop.collect.preferences import PreferencePair, write_pairs

    pairs = [PreferencePair(f"add {i} and 1. ", str(i + 1), f"sure! {i + 1} hope this helps!") for i in range(40)]
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    r = recipe({"data": str(tmp_path / "pairs.jsonl"), "ensemble": 2, "aggregate": "mean_minus_std",
                "steps": 20, "eval_every": 20, "checkpoint_every": 20, "test_pairs": 20})
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    meta = json.loads((tmp_path / "run" / summary["stages"][0]["reward_model_dir"] / "reward_model.json").read_text())
    assert meta == {"kind": "bradley-terry", "members": 2, "aggregate": "mean_minus_std", "lam": 1.0}


def test_reward_model_stage_needs_something_to_compare():
    with pytest.raises(Exception, match="source: 'mixed' samples responses from the latest trained policy"):
        validate_recipe({"env": {"name": "assistant"}, "stages": [{"kind": "reward_model"}]})


def test_resume_after_kill_9_matches(tmp_path, kill_then_resume):
    r = recipe({"steps": 100, "eval_every": 50})
    reference = runner.run(r, runner.prepare_run_dir(r, tmp_path / "ref"), show_progress=False)
    (tmp_path / "recipe.toml").write_text((tmp_path / "ref" / "recipe.toml").read_text())
    kill_then_resume(tmp_path / "recipe.toml", tmp_path / "killed", "0-reward_model")
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == reference
