"""The eval stage: the recipe's pretrained policy by name, fixed problem sets across seeds, best@K
skipped (not failed) for policies without a value head."""

from types import SimpleNamespace

import pytest
import torch

from alphaloop.envs.registry import make_env
from alphaloop.errors import UserError
from alphaloop.evals.evaluate import eval_problem_seed, evaluate_decoders
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.stages.eval import EvalStageConfig, run_eval

torch.set_num_threads(1)
TINY = LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64, max_seq_len=64)


def fake_ctx(seed: int = 0, pretrained: str | None = None, seen: list | None = None):
    def make(split):
        env = make_env("arithmetic", split=split)
        original = env.problems

        def problems(split, n, seed):
            if seen is not None:
                seen.append(seed)
            return original(split, n, seed)

        env.problems = problems
        return env

    return SimpleNamespace(
        recipe=SimpleNamespace(seed=seed, policy=SimpleNamespace(pretrained=pretrained)), results={},
        latest_policy_name=lambda: None, policy_dir=lambda name: None, make_env=make, seed=lambda *parts: 7,
        new_progress_task=lambda total: 0, progress=SimpleNamespace(update=lambda *a, **k: None),
    )


def test_problems_seed_fixes_the_problem_sets_across_recipe_seeds():
    cfg = EvalStageConfig(kind="eval", policies=["expert"], splits=["test", "heldout"], problems=5)
    seen = {}
    for seed in (0, 3):
        seen[seed] = []
        run_eval(fake_ctx(seed, seen=seen[seed]), cfg)
    assert seen[0] != seen[3]  # by default the sets follow the recipe seed ...
    assert seen[0] == [eval_problem_seed(0, "test"), eval_problem_seed(0, "heldout")]
    pinned = {}
    for seed in (0, 3):
        pinned[seed] = []
        run_eval(fake_ctx(seed, seen=pinned[seed]), cfg.model_copy(update={"problems_seed": 0}))
    assert pinned[0] == pinned[3] == seen[0]  # ... unless problems_seed pins them


def test_pretrained_policy_by_name_and_best_skipped_without_value_head(tmp_path):
    LMPolicy.build(TINY, make_env("arithmetic").alphabet, seed=0).save(tmp_path / "start")
    cfg = EvalStageConfig(kind="eval", policies=["pretrained"], decoders=["greedy", "maj@2", "best@2", "oracle@2"],
                          problems=4, curve=[1, 2])
    result = run_eval(fake_ctx(pretrained=str(tmp_path / "start")), cfg)
    by_decoder = {r["decoder"]: r for r in result["evals"]}
    assert all(r["policy"] == "pretrained" for r in result["evals"])
    assert by_decoder["best@2"]["metrics"] == {} and "value head" in by_decoder["best@2"]["skipped"]
    # a vote picks one of the k answers: it is right only where some sample is (oracle@k)
    assert by_decoder["maj@2"]["metrics"]["accuracy"] <= by_decoder["oracle@2"]["metrics"]["accuracy"]
    assert by_decoder["oracle@2"]["metrics"]["accuracy"] <= 1
    assert {p["decoder"] for p in result["curves"]["test_time_compute"]} == {"maj", "oracle"}


def test_pretrained_policy_missing_is_a_user_error(tmp_path):
    cfg = EvalStageConfig(kind="eval", policies=["pretrained"], problems=2)
    with pytest.raises(UserError, match=r"policy 'pretrained' needs \[policy\] pretrained"):
        run_eval(fake_ctx(), cfg)
    with pytest.raises(UserError, match="cannot load"):
        run_eval(fake_ctx(pretrained=str(tmp_path / "nowhere")), cfg)


def test_value_head_policy_keeps_best_and_direct_calls_still_fail_fast():
    env = make_env("arithmetic", split="test")
    problems = env.problems("test", 3, seed=0)
    policy = LMPolicy.build(TINY, env.alphabet, seed=1)
    with pytest.raises(ValueError, match="has no value head"):
        evaluate_decoders("sft", policy, env, problems, ["best@2"], seed=0)
    records, _ = evaluate_decoders("sft", policy, env, problems, ["best@2", "judge@2"], seed=0,
                                   skip_missing_value_head=True)
    assert "skipped" in records[0] and "skipped" not in records[1]
    policy.add_value_head()
    records, _ = evaluate_decoders("ppo", policy, env, problems, ["best@2", "oracle@2"], seed=0,
                                   skip_missing_value_head=True)
    assert "skipped" not in records[0]
    # best-of-k picks one of the same k samples: never right where none of them is
    assert records[0]["metrics"]["accuracy"] <= records[1]["metrics"]["accuracy"]
