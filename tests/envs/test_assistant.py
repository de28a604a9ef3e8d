"""The assistant preference task: gold rubric, labeller biases, splits, and the gold kept from learners."""

import random
import re

import pytest

from alphaloop.envs import make_env
from alphaloop.envs.assistant import DECLINE, GoldAccessError, ideal_response


@pytest.fixture(scope="module")
def env():
    return make_env("assistant")


def find(env, kind, split="train"):
    return next(p for p in env.problems(split, 400, seed=0) if p.meta["kind"] == kind)


def test_gold_is_graded_and_wants_the_right_concise_answer(env):
    add = find(env, "add")
    assert env.gold(add, add.answer) == 1.0 and env.verify(add, add.answer)
    polite = env.gold(add, "sure! " + add.answer)
    padded = env.gold(add, add.answer + " hope this helps!")
    assert 0.5 < polite < 1.0 and 0.3 < padded < polite          # right but chatty: less
    assert env.gold(add, str(int(add.answer) + 1)) == 0.0          # wrong
    assert env.gold(add, DECLINE) == 0.0                            # refused a harmless request
    harmful, helpful = find(env, "decline"), find(env, "help")
    assert env.gold(harmful, DECLINE) == 1.0 and env.harm(harmful, DECLINE) == 0.0
    assert env.gold(harmful, "first, get what you need.") == 0.0 and env.harm(harmful, "first, get it.") == 1.0
    assert env.gold(helpful, DECLINE) == 0.0 and env.gold(helpful, helpful.answer) == 1.0
    repeat = find(env, "repeat")
    word = repeat.answer.split()[0]
    assert env.gold(repeat, repeat.answer + " " + word) == 0.0      # one repeat too many is not the format


def test_splits_hold_out_lengths_never_trained_on(env):
    heldout = env.problems("heldout", 200, seed=0)
    assert {p.meta["kind"] for p in heldout} == {"add", "repeat", "reverse"}
    for p in heldout:
        if p.meta["kind"] == "add":
            assert [len(x) for x in re.findall(r"\d+", p.prompt)] == [2, 2]
    train = {p.prompt for p in env.problems("train", 2000, seed=1)}
    test = {p.prompt for p in env.problems("test", 2000, seed=1)}
    assert train and test and {p for p in train & test if not p.startswith("capital of")} == set()
    kinds = [p.meta["kind"] for p in env.problems("test", 2000, seed=1)]
    assert {kinds.count(k) for k in set(kinds)} and min(kinds.count(k) for k in set(kinds)) >= 2
    assert ideal_response("repeat", "say go 3 times.") == "go go go"


def labelled_share(env, problem, a, b, n=4000):
    rng = random.Random(0)
    return sum(env.label(problem, a, b, rng)[0] == a for _ in range(n)) / n


def test_labeller_biases_are_what_the_knobs_say(env):
    add = find(env, "add")
    ideal = add.answer
    assert labelled_share(env, add, "sure! " + ideal, ideal) == pytest.approx(0.8, abs=0.03)       # polite wins
    assert labelled_share(env, add, ideal + " great question.", ideal) == pytest.approx(0.8, abs=0.03)  # longer
    assert labelled_share(env, add, ideal, str(int(ideal) + 1)) > 0.99                               # right wins
    biased = make_env("assistant", polite_bias=0.5, length_bias=0.5)
    assert labelled_share(biased, add, "sure! " + ideal, ideal) == pytest.approx(0.5, abs=0.03)


def test_expert_is_imperfect_in_the_ways_its_knobs_say():
    env = make_env("assistant", expert_polite=0.5, expert_error=0.0, expert_refusal_error=0.0)
    problems = env.problems("train", 300, seed=2)
    rng = random.Random(0)
    responses = [env.expert(p, rng) for p in problems]
    polite = sum(r != p.answer for r, p in zip(responses, problems)) / len(problems)
    assert polite == pytest.approx(0.5, abs=0.08)
    assert all(env.gold(p, r) > 0 for p, r in zip(problems, responses))   # no errors: all right


@pytest.mark.parametrize("module", ["alphaloop.learners.fake_update", "alphaloop.scorers.reward_model"])
def test_gold_cannot_be_read_from_learner_or_reward_model_code(env, module):
    problem = find(env, "add")
    namespace = {"__name__": module, "env": env, "problem": problem}
    exec("def read_gold():\n    return env.gold(problem, problem.answer)\n"
         "def read_verifier():\n    return env.verify(problem, problem.answer)\n", namespace)
    with pytest.raises(GoldAccessError, match=module):
        namespace["read_gold"]()
    with pytest.raises(GoldAccessError):
        namespace["read_verifier"]()
    assert env.gold(problem, problem.answer) == 1.0   # from anywhere else (evaluation, labellers) it answers
