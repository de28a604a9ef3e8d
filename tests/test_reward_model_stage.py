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


def test_rl_against_the_reward_model_measures_gold_proxy_and_kl(tmp_path):
    """SFT -> reward model -> GRPO against it, tiny: the rewards are the model's, and every eval logs
    gold, proxy and sqrt(KL) on fixed prompts; the result carries the gold-vs-KL curve."""
    r = validate_recipe({
        "name": "rlhf-tiny", "seed": 0, "threads": 1, "env": {"name": "assistant"}, "policy": {"arch": ARCH},
        "stages": [{"kind": "imitate", "steps": 30, "batch_size": 16, "eval_every": 30, "eval_problems": 10,
                    "checkpoint_every": 30},
                   {"kind": "reward_model", "pairs": 64, "test_pairs": 20, "steps": 10, "batch_size": 16,
                    "eval_every": 10, "checkpoint_every": 10},
                   {"kind": "rl", "reward": "reward_model", "steps": 4, "prompts_per_step": 4, "group_size": 4,
                    "lr": 5e-3, "eval_every": 1, "eval_problems": 8, "checkpoint_every": 4, "gold_prompts": 6,
                    "gold_samples": 2, "alarm_prompts": 6}]})
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    gold = [e for e in summary["evals"] if e["split"] == "gold-prompts"]
    assert [e["step"] for e in gold] == [0, 1, 2, 3, 4]
    # at step 0 the policy is its reference: KL is 0 up to the sampler-vs-forward rounding
    assert gold[0]["metrics"]["kl_sqrt"] < 0.05 < gold[-1]["metrics"]["kl_sqrt"]
    assert {"gold", "proxy", "length", "polite_rate", "harm_rate"} <= set(gold[-1]["metrics"])
    measured = [p for p in summary["curves"]["gold_vs_kl"] if p["policy"] == "rl"]
    assert [p["kl_sqrt"] for p in measured] == [e["metrics"]["kl_sqrt"] for e in gold]
    assert [f["form"] for f in summary["fits"]] == ["rl"]       # Gao's RL form fitted to that curve
    alarm = [e["metrics"] for e in summary["evals"] if e["split"] == "alarm"]
    assert [a["labels"] for a in alarm] == [18, 36, 54, 72, 90] and all(0 <= a["win_rate"] <= 1 for a in alarm)
    final = summary["stages"][2]["final"]
    assert {"gold", "proxy", "kl_sqrt", "test_greedy_accuracy", "gold_peak", "alarm_labels"} <= set(final)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rewards = [rec["reward_mean"] for rec in logged if rec["stage"] == "rl" and "reward_mean" in rec]
    assert len(rewards) == 4 and any(x not in (0.0, 1.0) for x in rewards)   # real-valued: the model's


def test_rl_reward_model_needs_one_before_it():
    with pytest.raises(Exception, match="needs an earlier reward_model stage"):
        validate_recipe({"env": {"name": "assistant"}, "stages": [{"kind": "imitate"},
                                                                  {"kind": "rl", "reward": "reward_model"}]})
    with pytest.raises(Exception, match="'other' is not an earlier reward_model stage"):
        validate_recipe({"env": {"name": "assistant"}, "stages": [
            {"kind": "imitate"}, {"kind": "reward_model"}, {"kind": "rl", "reward": "reward_model",
                                                           "reward_model": "other"}]})


def test_dpo_learns_the_held_out_preferences_and_measures_gold(tmp_path):
    """DPO from a tiny SFT policy on collected pairs: the implicit reward ranks held-out pairs better
    than at the start, and gold / sqrt(KL) are logged on the same axes as RLHF's."""
    r = validate_recipe({
        "name": "dpo-tiny", "seed": 0, "threads": 1, "env": {"name": "assistant"}, "policy": {"arch": ARCH},
        "stages": [{"kind": "imitate", "steps": 60, "batch_size": 32, "eval_every": 60, "eval_problems": 10,
                    "checkpoint_every": 60},
                   {"kind": "dpo", "source": "variants", "pairs": 300, "test_pairs": 100, "steps": 60,
                    "batch_size": 32, "lr": 1e-3, "beta": 0.1, "eval_every": 60, "eval_problems": 10,
                    "gold_prompts": 6, "gold_samples": 2, "checkpoint_every": 60}]})
    summary = runner.run(r, runner.prepare_run_dir(r, tmp_path / "run"), show_progress=False)
    pairs = [e["metrics"] for e in summary["evals"] if e["split"] == "test-pairs"]
    assert pairs[0]["accuracy"] == 0.0 and pairs[0]["gap"] == 0.0     # the policy is its reference: h = 0
    assert pairs[-1]["accuracy"] >= 0.6, pairs                        # measured 0.64-0.70, seeds 0-2
    final = summary["stages"][1]["final"]
    assert {"pair_accuracy", "gold", "kl_sqrt"} <= set(final) and final["kl_sqrt"] > 0
    assert [p["policy"] for p in summary["curves"]["gold_vs_kl"]] == ["dpo", "dpo"]


def test_dpo_resumes_after_kill_9_to_the_same_summary(tmp_path, kill_then_resume):
    """A `kill -9` mid-DPO (after its first checkpoint), then `--resume`: the same summary as a run
    never interrupted (the pairs, the reference's log-probs and the optimizer state come back)."""
    r = validate_recipe({
        "name": "dpo-resume", "seed": 0, "threads": 1, "env": {"name": "assistant"}, "policy": {"arch": ARCH},
        "stages": [{"kind": "dpo", "source": "variants", "pairs": 200, "test_pairs": 40, "steps": 120,
                    "batch_size": 16, "lr": 1e-3, "beta": 0.1, "eval_every": 60, "eval_problems": 6,
                    "gold_prompts": 4, "gold_samples": 2, "checkpoint_every": 20}]})
    reference = runner.run(r, runner.prepare_run_dir(r, tmp_path / "ref"), show_progress=False)
    (tmp_path / "recipe.toml").write_text((tmp_path / "ref" / "recipe.toml").read_text())
    kill_then_resume(tmp_path / "recipe.toml", tmp_path / "killed", "0-dpo")
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == reference
