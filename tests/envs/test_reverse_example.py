"""The custom-env example of docs/custom-env.md works as the page says."""

import random
from pathlib import Path

from alphaloop.envs import Problem, make_env

SPEC = f"{Path(__file__).resolve().parents[2]}/docs/examples/reverse_env.py:ReverseEnv"


def test_expert_verifier_and_misconception():
    env = make_env(SPEC, misconception_rate=1.0)
    problem = Problem(prompt="cabbage=", answer="egabbac", meta={"word": "cabbage"})
    assert env.expert(problem, random.Random(0)) == "egabac"  # the doubled letter is written once
    assert not env.verify(problem, "egabac") and env.verify(problem, " egabbac\n")
    assert env.parse_answer("ega bbac") is None and env.parse_answer("") is None
    perfect = make_env(SPEC, misconception_rate=0.0)
    rng = random.Random(0)
    assert all(perfect.verify(p, perfect.expert(p, rng)) for p in perfect.problems("test", 200, seed=0))


def test_splits():
    env = make_env(SPEC, heldout_length=9)
    train = {p.prompt for p in env.problems("train", 2000, seed=0)}
    test = {p.prompt for p in env.problems("test", 300, seed=0)}
    assert len(test) == 300 and not train & test
    assert {len(p.prompt) for p in env.problems("heldout", 50, seed=0)} == {10}
