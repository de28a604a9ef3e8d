"""Stage `expert_iteration` end to end: label-free and verified filters run from a recipe, the recipe's
cross-references are checked before anything runs, a scorer can be the filter, and a run killed mid-round
resumes to the same summary."""

import json

import pytest
import torch

from alphaloop import runner
from alphaloop.errors import UserError
from alphaloop.recipe import validate_recipe
from alphaloop.stages.context import StageContext
from alphaloop.stages.expert_iteration import ExpertIterationStageConfig, collect_round

ARCH = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2, "intermediate_size": 64}
KNOBS = {"digits_min": 1, "digits_max": 1, "misconception_rate": 0.7}
IMITATE = {"kind": "imitate", "steps": 100, "batch_size": 16, "lr": 3e-3, "eval_every": 100, "eval_problems": 20,
           "checkpoint_every": 100}
EI = {"kind": "expert_iteration", "rounds": 2, "prompts_per_round": 16, "samples": 4, "steps_per_round": 4,
      "batch_size": 8, "eval_every": 4, "eval_problems": 20, "checkpoint_every": 2}


def recipe(stages):
    return validate_recipe({"name": "ei", "seed": 0, "threads": 1, "policy": {"arch": ARCH},
                            "env": {"name": "arithmetic", "knobs": KNOBS}, "stages": stages})


def test_the_filters_run_and_report_their_rounds(tmp_path):
    stages = [dict(IMITATE, verify_batch_size=8), dict(EI, name="verified"),
              dict(EI, name="voted", filter="majority", min_agreement=0.25, start_from="imitate", from_start=True),
              dict(EI, name="judged", filter="judge", keep_per_prompt=1, start_from="imitate", rounds=1)]
    summary = runner.run(recipe(stages), runner.prepare_run_dir(recipe(stages), tmp_path / "r"), show_progress=False)
    torch.set_num_threads(1)
    final = {s["name"]: s["final"] for s in summary["stages"]}
    assert final["verified"]["samples_drawn"] == final["voted"]["samples_drawn"] == 2 * 16 * 4
    assert final["verified"]["kept"] > 0 and final["voted"]["kept"] > 0
    assert final["verified"]["kept_precision"] == 1.0   # the verifier keeps verified samples only
    assert 0.0 <= final["voted"]["kept_precision"] <= 1.0
    assert final["judged"]["kept"] <= 16   # at most the best of each prompt, if its own verdict says yes
    rounds = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    rounds = [r for r in rounds if r.get("kind") == "round"]
    assert [(r["stage"], r["round"]) for r in rounds] == [("verified", 1), ("verified", 2), ("voted", 1), ("voted", 2),
                                                          ("judged", 1)]
    assert all(r["kept"] <= 16 * EI.get("keep_per_prompt", 4) for r in rounds)
    assert (tmp_path / "r" / summary["stages"][1]["policy_dir"] / "model.safetensors").is_file()
    # the report's accuracy-vs-samples curve: one line per stage, from 0 samples to all drawn
    curve = summary["curves"]["test_accuracy_vs_samples"]
    assert [p["samples_drawn"] for p in curve if p["stage"] == "verified"] == [0, 64, 128]


def test_recipe_cross_references_are_checked_before_running():
    with pytest.raises(UserError, match="filter: 'reward_model' needs an earlier reward_model stage"):
        recipe([IMITATE, dict(EI, filter="reward_model")])
    with pytest.raises(UserError, match="start_from: 'nope' is not an earlier stage"):
        recipe([IMITATE, dict(EI, start_from="nope")])
    with pytest.raises(UserError, match="reward_model: only read with filter = 'reward_model'"):
        recipe([IMITATE, dict(EI, reward_model="rm")])
    with pytest.raises(UserError, match="min_score: only read by the scored filters"):
        recipe([IMITATE, dict(EI, min_score=0.5)])
    with pytest.raises(UserError, match="keep_per_prompt"):
        recipe([IMITATE, dict(EI, keep_per_prompt=0)])


def test_the_value_filter_reads_a_ppo_critic_and_needs_one(tmp_path):
    spec = recipe([dict(IMITATE, steps=2), dict(EI, filter="value")])
    with pytest.raises(UserError, match="stages.1.filter: 'value': policy .* has no value head"):
        runner.run(spec, runner.prepare_run_dir(spec, tmp_path / "r"), show_progress=False)
    ppo = {"kind": "rl", "algorithm": "ppo", "steps": 2, "prompts_per_step": 4, "group_size": 2, "eval_every": 2,
           "eval_problems": 10, "checkpoint_every": 2}
    spec = recipe([dict(IMITATE, steps=20), ppo, dict(EI, filter="value", rounds=1, min_score=-1e9)])
    summary = runner.run(spec, runner.prepare_run_dir(spec, tmp_path / "ok"), show_progress=False)
    assert summary["stages"][2]["final"]["kept"] > 0   # every prompt's best by the critic (no threshold)
    from alphaloop.policies.lm import LMPolicy

    # every sample of the barely imitated policy runs to the length limit and is masked out of PPO's loss:
    # the update must leave the weights as they were, not NaN (whitening advantages over no tokens)
    critic = LMPolicy.load(tmp_path / "ok" / summary["stages"][1]["policy_dir"])
    assert all(torch.isfinite(p).all() for p in critic.parameters())


class LengthScorer:
    """Scores a sample by its completion's length: the filter must keep the longest."""

    def score(self, episodes):
        return [float(len(e.action_ids)) for e in episodes]


def test_a_scorer_filter_keeps_the_top_scored_samples(tmp_path):
    from alphaloop.policies.lm import LMPolicy

    spec = recipe([IMITATE, dict(EI, filter="majority", keep_per_prompt=1)])
    ctx = StageContext(tmp_path, spec, logger=None, progress=None, index=1)
    env = ctx.make_env("train", seed=0)
    policy = LMPolicy.build(spec.policy.arch, alphabet=env.alphabet, seed=0)
    cfg = ExpertIterationStageConfig(**dict(EI, kind="expert_iteration", filter="reward_model", keep_per_prompt=1))
    kept, stats = collect_round(ctx, cfg, policy, env, 0, env.max_completion_chars + 1, LengthScorer())
    assert len(kept) == stats["kept"] == 16 and stats["prompts_kept_frac"] == 1.0
    assert stats["samples_drawn"] == 64
    # an untrained policy rarely stops: its longest samples run to the length limit and get an EOS added
    assert all(completion[-1] == policy.eos_id for _, completion in kept)


def test_resume_after_kill_9_mid_round_matches(tmp_path, kill_then_resume):
    stages = [dict(IMITATE, steps=30), dict(EI, rounds=3, steps_per_round=10, checkpoint_every=4)]
    spec = recipe(stages)
    reference = runner.run(spec, runner.prepare_run_dir(spec, tmp_path / "ref"), show_progress=False)
    torch.set_num_threads(1)
    (tmp_path / "recipe.toml").write_text((tmp_path / "ref" / "recipe.toml").read_text())
    kill_then_resume(tmp_path / "recipe.toml", tmp_path / "killed", "1-expert_iteration", settle=0.05)
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == reference
