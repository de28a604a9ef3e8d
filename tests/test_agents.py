"""Agents end to end: a tiny shell recipe (imitate -> multi-turn GRPO -> eval with pass^k, harm and the
horizon curve), resume of the multi-turn RL stage after kill -9, and a fixed-seed learning test."""

import json

import pytest
import torch

from alphaloop import runner
from alphaloop.recipe import validate_recipe
from alphaloop.report import build_report

ARCH = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2, "intermediate_size": 64,
        "max_seq_len": 384}


def tiny(stages, knobs=None, arch=ARCH, seed=0):
    return validate_recipe({"name": "agent-tiny", "seed": seed, "threads": 1,
                            "env": {"name": "shell", "knobs": knobs or {}}, "policy": {"arch": arch},
                            "stages": stages})


STAGES = [{"kind": "imitate", "steps": 6, "batch_size": 8, "eval_every": 6, "eval_problems": 6,
           "checkpoint_every": 3},
          {"kind": "rl", "steps": 4, "prompts_per_step": 3, "group_size": 2, "eval_every": 2, "eval_problems": 6,
           "checkpoint_every": 1},
          {"kind": "eval", "policies": ["expert", "imitate", "rl"], "splits": ["test", "heldout"],
           "decoders": ["greedy", "sample", "pass^3"], "problems": 8}]


def test_tiny_agent_recipe_reports_reliability_harm_and_horizon(tmp_path):
    recipe = tiny(STAGES)
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    assert summary["status"] == "complete"
    final = [r for r in summary["evals"] if r["stage"] == "eval"]
    assert {(r["policy"], r["split"], r["decoder"]) for r in final} == {
        (p, s, d) for p in ("expert", "imitate", "rl") for s in ("test", "heldout")
        for d in ("greedy", "sample", "pass^3")}
    for record in final:
        assert {"accuracy", "harm_rate", "steps", "tool_error_rate"} <= set(record["metrics"])
    expert = {r["decoder"]: r for r in final if r["policy"] == "expert" and r["split"] == "test"}
    assert expert["pass^3"]["metrics"]["pass^3"] <= expert["pass^3"]["metrics"]["pass^1"]
    assert len(expert["pass^3"]["pass_hat"]) == 3
    assert {"reliability", "horizon_test", "horizon_heldout"} <= set(summary["curves"])
    lines = {p["line"] for p in summary["curves"]["horizon_test"]}
    assert lines == {"measured", "p^h"}
    # per task template: every task counted once, the split's accuracy recovered as a weighted mean
    for record in final:
        rows = record["by_template"]
        assert sum(m["tasks"] for m in rows.values()) == record["metrics"]["n"] == 8
        if record["decoder"] != "pass^3":
            overall = sum(m["success"] * m["tasks"] for m in rows.values()) / 8
            assert overall == pytest.approx(record["metrics"]["accuracy"], abs=1e-5)
        else:
            overall = sum(m["pass^3"] * m["tasks"] for m in rows.values()) / 8
            assert overall == pytest.approx(record["metrics"]["pass^3"], abs=1e-5)
    page = build_report(tmp_path / "run").read_text()
    assert "reliability" in page and "horizon" in page and "Agent transcripts" in page
    assert "Per task template" in page
    greedy = next(r for r in final if r["policy"] == "expert" and r["decoder"] == "greedy")
    assert greedy["transcripts"] and all(t["text"].startswith("task:") and "$ " in t["text"]
                                         for t in greedy["transcripts"])
    rl_steps = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rl_steps = [r for r in rl_steps if r["stage"] == "rl" and "reward_mean" in r]
    assert len(rl_steps) == 4 and all(r["response_length"] > 0 for r in rl_steps)


@pytest.mark.parametrize("memory", [0, 2])
def test_multi_turn_rl_resumes_after_kill_9(tmp_path, kill_then_resume, memory):
    stages = [dict(STAGES[0], steps=4, eval_every=4), dict(STAGES[1], steps=6, eval_every=3)]
    recipe = tiny(stages, {"memory": memory})
    reference = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "ref"), show_progress=False)
    (tmp_path / "recipe.toml").write_text((tmp_path / "ref" / "recipe.toml").read_text())
    kill_then_resume(tmp_path / "recipe.toml", tmp_path / "killed", "1-rl", settle=0.3)
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == reference


def test_rl_raises_success_on_a_short_shell_task(tmp_path):
    """One-file clean-up tasks (ls, rm, ls, submit) after an expert that submits early 40% of the time:
    imitation copies the premature submits; GRPO on the final-state verifier alone removes most of them,
    so reliability (pass^4, all four tries succeed) rises several-fold."""
    torch.manual_seed(0)
    knobs = {"templates": "clean", "min_files": 1, "max_files": 1, "distractors": 0, "slip": 0.4, "typo": 0.0,
             "harm_slip": 0.0}
    arch = dict(ARCH, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=4, intermediate_size=192,
                max_seq_len=256)
    stages = [{"kind": "imitate", "steps": 400, "batch_size": 32, "lr": 3e-3, "eval_every": 400, "eval_problems": 20,
               "checkpoint_every": 400},
              {"kind": "rl", "steps": 15, "prompts_per_step": 8, "group_size": 8, "lr": 3e-4, "eval_every": 15,
               "eval_problems": 20, "checkpoint_every": 15},
              {"kind": "eval", "policies": ["imitate", "rl"], "decoders": ["pass^4"], "problems": 40}]
    recipe = tiny(stages, knobs, arch)
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "r"), show_progress=False)
    final = {r["policy"]: r["metrics"] for r in summary["evals"] if r["stage"] == "eval"}
    imitated, reinforced = final["imitate"], final["rl"]
    assert reinforced["pass^1"] >= imitated["pass^1"] + 0.1, (imitated, reinforced)
    assert reinforced["pass^4"] >= 2 * imitated["pass^4"] + 0.1, (imitated, reinforced)


@pytest.mark.parametrize("memory", [0, 2])
@pytest.mark.parametrize("credit", [{"algorithm": "vineppo", "vine_samples": 2},
                                    {"algorithm": "ppo", "credit": "turn"}])
def test_per_turn_credit_runs_end_to_end(tmp_path, credit, memory):
    stages = [dict(STAGES[0], steps=4, eval_every=4), dict(STAGES[1], steps=2, eval_every=2, **credit)]
    recipe = tiny(stages, {"memory": memory})
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    assert summary["status"] == "complete"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["stage"] == "rl" and "reward_mean" in r]
    assert len(rows) == 2
    if credit["algorithm"] == "vineppo":
        assert all(r["vine_rollouts"] == 2 * r["vine_states"] for r in rows)
    else:
        assert all("value_loss" in r for r in rows)


def test_ppo_over_token_credit_with_memory_is_a_clear_error(tmp_path):
    from alphaloop.errors import UserError

    recipe = tiny([dict(STAGES[1], steps=1, algorithm="ppo")], {"memory": 2})
    with pytest.raises(UserError, match="credit = 'turn'"):
        runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)


def test_a_sample_budget_ends_the_rl_stage_when_spent(tmp_path):
    stages = [dict(STAGES[0], steps=2, eval_every=2), dict(STAGES[1], steps=50, eval_every=25, sample_budget=10)]
    recipe = tiny(stages)
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["stage"] == "rl" and "reward_mean" in r]
    assert rows[-1]["generated_actions"] >= 10 and all(r["generated_actions"] < 10 for r in rows[:-1])
    assert summary["stages"][1]["steps"] == len(rows) < 50
    assert [r["step"] for r in summary["evals"] if r["stage"] == "rl"][-1] == len(rows)   # evaluated at its end


def test_rl_stages_can_all_start_from_the_pretrained_policy(tmp_path):
    from alphaloop.policies.lm import LMPolicy

    first = tiny([dict(STAGES[0], steps=4, eval_every=4)])
    runner.run(first, runner.prepare_run_dir(first, tmp_path / "imitate"), show_progress=False)
    start = str(tmp_path / "imitate" / "stages" / "0-imitate" / "policy")
    rl = dict(STAGES[1], steps=1, eval_every=1, start_from="pretrained")
    recipe = validate_recipe({"name": "agent-tiny", "seed": 0, "threads": 1, "env": {"name": "shell"},
                              "policy": {"pretrained": start},
                              # a's weight decay moves it even where every advantage is 0
                              "stages": [dict(rl, name="a", lr=0.05, weight_decay=0.5),
                                         dict(rl, name="b", algorithm="rloo", lr=1e-12)]})
    runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    weights = {name: LMPolicy.load(path).state_dict() for name, path in
               (("start", start), ("a", tmp_path / "run" / "stages" / "0-a" / "policy"),
                ("b", tmp_path / "run" / "stages" / "1-b" / "policy"))}
    drift = {name: max(float((w - weights["start"][k]).abs().max()) for k, w in weights[name].items())
             for name in ("a", "b")}
    assert drift["b"] < 1e-6 < drift["a"]     # b started from the pretrained policy, not from a's


def test_tiny_invoices_recipe_runs_end_to_end(tmp_path):
    stages = [dict(STAGES[0], steps=4, eval_every=4), dict(STAGES[1], steps=2, eval_every=2),
              {"kind": "eval", "policies": ["expert", "rl"], "splits": ["test", "heldout"],
               "decoders": ["greedy", "pass^2"], "problems": 4}]
    recipe = validate_recipe({"name": "invoices-tiny", "seed": 0, "threads": 1, "env": {"name": "invoices"},
                              "policy": {"arch": dict(ARCH, max_seq_len=896)}, "stages": stages})
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    assert summary["status"] == "complete"
    final = [r for r in summary["evals"] if r["stage"] == "eval"]
    assert len(final) == 8 and all("harm_rate" in r["metrics"] for r in final)
    assert next(r for r in final if r["policy"] == "expert" and r["decoder"] == "greedy")["metrics"]["accuracy"] > 0
