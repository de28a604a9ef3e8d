"""Verification rows for judge@K: corruption, labels, and the exact context JudgeScorer reads."""

import random

import pytest
import torch

from alphaloop.batch import pack
from alphaloop.envs.registry import make_env
from alphaloop.episode import Episode
from alphaloop.learners.imitate import imitation_loss
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.scorers import JudgeScorer
from alphaloop.scorers.judge_data import corrupt, verdict_accuracy, verification_rows

torch.set_num_threads(1)
ARITH = "0123456789+-*=> "
TINY = LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64, max_seq_len=64)


def test_corrupt_changes_one_character_of_the_same_kind_in_the_last_word():
    rng = random.Random(0)
    text = "7+5=12 4+8+1=13 >132"
    for _ in range(200):
        out = corrupt(text, ARITH, rng)
        diff = [i for i, (a, b) in enumerate(zip(text, out)) if a != b]
        assert len(out) == len(text) and len(diff) == 1
        assert diff[0] > text.rindex(">") and out[diff[0]].isdigit()
    hinted = "g7+5=12 >h1g2"
    letters = {corrupt(hinted, ARITH + "ghij", rng)[-2] for _ in range(200)}
    assert letters >= {"h", "i", "j", "g"} - {"x"} and all(c.isalpha() or c.isdigit() for c in letters)
    assert corrupt("+ = >", ARITH, rng) == "+ = >"  # nothing to replace
    assert corrupt("12 +", ARITH, rng) != "12 +"  # the last word has no digit: anywhere else


def test_verification_rows_match_the_judge_context_and_the_verifier():
    env = make_env("arithmetic", digits_max=2, misconception_rate=0.7)
    policy = LMPolicy.build(TINY, env.alphabet, seed=0)
    judge = JudgeScorer(policy)
    contexts, verdicts, yes = verification_rows(env, policy, random.Random(1), 12, torch.Generator().manual_seed(0))
    assert len(contexts) == len(verdicts) == 12
    assert {tuple(v) for v in verdicts} <= {tuple(judge.yes_ids), tuple(judge.no_ids)}
    assert yes == pytest.approx(sum(v == judge.yes_ids for v in verdicts) / 12)
    for row, (context, verdict) in enumerate(zip(contexts, verdicts)):
        assert context[0] == policy.bos_id and context[-len(judge.check_ids):] == judge.check_ids
        if row < 6:  # the policy's own samples: an untrained policy writes garbage, labelled no
            assert verdict == judge.no_ids
            continue
        # the expert's rows decode as <bos><prompt><candidate><check>, labelled by the verifier
        prompt, _, candidate = policy.decode(context[1:-len(judge.check_ids)]).partition("=")
        assert verdict == (judge.yes_ids if env.verify(_problem(prompt + "="), candidate) else judge.no_ids)
        episode = Episode(observations=[prompt + "="], actions=[candidate])
        assert judge._context(episode) == context  # exactly the tokens the scorer reads at test time


def _problem(prompt: str):
    from alphaloop.envs.arithmetic import make_problem, operands
    from alphaloop.envs.base import Problem

    a, b, op = operands(Problem(prompt, ""))
    return make_problem(a, b, op)


def test_verification_rows_are_reproducible():
    env = make_env("arithmetic", digits_max=2)
    policy = LMPolicy.build(TINY, env.alphabet, seed=0)
    first = verification_rows(env, policy, random.Random(3), 8, torch.Generator().manual_seed(4))
    again = verification_rows(env, policy, random.Random(3), 8, torch.Generator().manual_seed(4))
    assert first == again


def test_verdict_accuracy():
    assert verdict_accuracy([1.0, -2.0, 0.0, 3.0], [True, False, False, False]) == 0.75
    with pytest.raises(ValueError, match="equal, non-empty"):
        verdict_accuracy([1.0], [])


def test_verification_rows_teach_the_verdict_on_held_out_candidates():
    """Imitation plus the verdict loss on verification rows makes the judge's log-odds separate
    right from wrong candidates of *test* problems (1-2 digit sums, whose column facts also occur
    in training problems; half the candidates are one-character corruptions of the expert's
    answer). The rows are the expert's (own_share=0, to keep the test fast; the stage also judges
    the policy's own samples). Measured: 0.80-0.85 after 800 steps for policy seeds 0-4."""
    from alphaloop.batch import pack_episodes
    from alphaloop.collect import demonstrations

    knobs = {"digits_min": 1, "digits_max": 2, "misconception_rate": 0.0, "test_fraction": 0.3}
    env = make_env("arithmetic", **knobs)
    policy = LMPolicy.build(LMArch(hidden_size=48, num_layers=2, num_heads=2, num_kv_heads=2, intermediate_size=96,
                                   max_seq_len=48), env.alphabet, seed=1)
    test = make_env("arithmetic", split="test", **knobs)
    check = random.Random(1)
    candidates = [(p, corrupt(c, test.alphabet, check) if i % 2 else c)
                  for p in test.problems("test", 150, seed=0) for i, c in enumerate([test.expert(p, check)] * 2)]
    labels = [test.verify(p, c) for p, c in candidates]
    assert 0.4 < sum(labels) / len(labels) < 0.6  # balanced: one verdict for all scores ~50%
    episodes = [Episode(observations=[p.prompt], actions=[c]) for p, c in candidates]
    before = verdict_accuracy(JudgeScorer(policy).score(episodes), labels)

    steps = 800
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    rng, generator = random.Random(0), torch.Generator().manual_seed(0)
    for _ in range(steps):
        contexts, verdicts, _ = verification_rows(env, policy, rng, 32, generator, own_share=0.0)
        loss = imitation_loss(policy, *pack_episodes(demonstrations(env, policy, rng, 32), policy.pad_id))
        loss = loss + imitation_loss(policy, *pack(contexts, verdicts, policy.pad_id))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        decay.step()
    after = verdict_accuracy(JudgeScorer(policy).score(episodes), labels)
    assert before < 0.65 and after > 0.72, (before, after)


def test_imitate_stage_logs_the_verification_loss(tmp_path):
    import json

    from alphaloop.recipe import validate_recipe
    from alphaloop.runner import prepare_run_dir, run

    def stage(rows: int) -> dict:
        return {"kind": "imitate", "steps": 3, "batch_size": 8, "verify_batch_size": rows, "eval_every": 3,
                "eval_problems": 4, "checkpoint_every": 3}

    recipe = validate_recipe({
        "name": "judge", "seed": 0, "threads": 1, "env": {"name": "arithmetic", "knobs": {"digits_max": 1}},
        "policy": {"arch": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
                            "intermediate_size": 32, "max_seq_len": 48}},
        "stages": [stage(4)]})
    run_dir = prepare_run_dir(recipe, tmp_path / "run")
    run(recipe, run_dir, show_progress=False)
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "loss" in r]
    assert len(steps) == 3 and all(r["verify_loss"] > 0 and 0 <= r["verify_yes_frac"] <= 1 for r in steps)
    with pytest.raises(Exception, match="verify_batch_size"):
        validate_recipe({"stages": [stage(-1)]})
