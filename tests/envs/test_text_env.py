"""The text-env API on every env we ship: gymnasium conformance and random-play robustness."""

import random
import string
import warnings
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

from alphaloop.envs import make_env

ROOT = Path(__file__).resolve().parents[2]
REVERSE = f"{ROOT}/docs/examples/reverse_env.py:ReverseEnv"

CASES = [
    ("arithmetic", {}),
    ("arithmetic", {"ops": "+-*", "digits_max": 2, "slip_rate": 0.1}),
    (REVERSE, {}),
    ("assistant", {}),
    ("assistant", {"expert_polite": 0.6, "expert_error": 0.3, "expert_refusal_error": 0.3}),
]


def strict_check(env) -> None:
    """check_env with its warnings (observation outside the space, shared info, ...) as failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)


@pytest.mark.parametrize("spec,knobs", CASES)
@pytest.mark.parametrize("split", ["train", "test", "heldout"])
def test_check_env_passes(spec, knobs, split):
    strict_check(make_env(spec, split=split, seed=3, **knobs))


def random_actions(env, rng: random.Random) -> list:
    inside = [env.action_space.sample() for _ in range(20)]
    outside = ["".join(rng.choice(string.printable + "éß€\u0663\x00") for _ in range(rng.randint(1, 40)))
               for _ in range(20)]
    return inside + outside + ["", " ", ">", ">-", "> 1 2", "x" * 10_000, ">" + "9" * 5000, None, 42, b">1"]


@pytest.mark.parametrize("spec,knobs", CASES)
def test_random_actions_never_crash_and_score_zero(spec, knobs):
    env = make_env(spec, seed=0, **knobs)
    rng = random.Random(0)
    for action in random_actions(env, rng):
        prompt, _ = env.reset()
        observation, reward, terminated, truncated, info = env.step(action)
        assert terminated and not truncated
        assert observation in env.observation_space
        assert info["answer"] is not None and isinstance(info["success"], bool)
        if reward == 1.0:  # only a string that really ends in the right answer may score
            assert info["success"] and observation == "correct" and action.rstrip().endswith(info["answer"])
        else:
            assert reward == 0.0 and observation != "correct"
            if info["parsed"] is None:
                assert observation.startswith("invalid answer: ")


def test_invalid_actions_explain_themselves():
    env = make_env("arithmetic", seed=0)
    expectations = {
        "": "invalid answer: could not parse a final answer",
        "7+5=12 4+8+1=13 132": "invalid answer: could not parse a final answer",
        "1" * 31: "invalid answer: longer than 30 characters",
        None: "invalid answer: the action is not a string",
    }
    for action, expected in expectations.items():
        env.reset()
        observation, reward, *_ = env.step(action)
        assert (observation, reward) == (expected, 0.0)


def test_expert_completion_scores_one_and_wrong_answer_zero():
    env = make_env("arithmetic", seed=0, misconception_rate=0.0)
    prompt, info = env.reset()
    problem = env.problem
    assert prompt == problem.prompt and info["split"] == "train" and "answer" not in info
    observation, reward, _, _, info = env.step(env.expert(problem, random.Random(0)))
    assert (observation, reward, info["success"], info["parsed"]) == ("correct", 1.0, True, problem.answer)
    env.reset()
    wrong = str(int(env.problem.answer) + 1)
    observation, reward, _, _, info = env.step(f">{wrong}")
    assert (observation, reward, info["parsed"]) == ("wrong answer", 0.0, wrong)


def test_constructor_seed_makes_the_first_reset_reproducible():
    a = [make_env("arithmetic", seed=7).reset()[0] for _ in range(2)]
    env = make_env("arithmetic", seed=7)
    first = env.reset()[0]
    assert a[0] == a[1] == first
    assert env.reset(seed=7)[0] == first


def test_step_outside_an_episode_is_an_error():
    env = make_env("arithmetic")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(">1")
    env.reset(seed=0)
    env.step(">1")
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step(">1")


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown split 'valid'.*train, test, heldout"):
        make_env("arithmetic", split="valid")
    with pytest.raises(ValueError, match="unknown split"):
        make_env("arithmetic").problems("dev", 3, seed=0)


def test_render_ansi():
    env = make_env("arithmetic", render_mode="ansi", seed=1)
    prompt, _ = env.reset()
    assert env.render() == prompt
    env.step("nonsense")
    assert env.render() == f"{prompt}nonsense\n-> invalid answer: could not parse a final answer"
    with pytest.raises(ValueError, match="render_mode"):
        make_env("arithmetic", render_mode="human")


def test_problems_are_fixed_distinct_and_exhaust_small_splits():
    env = make_env("arithmetic")
    first = env.problems("test", 300, seed=5)
    assert [p.prompt for p in first] == [p.prompt for p in env.problems("test", 300, seed=5)]
    assert len({p.prompt for p in first}) == 300
    assert [p.prompt for p in first] != [p.prompt for p in env.problems("test", 300, seed=6)]
    # 1-digit addition has 100 problems (55 up to commuting); test + train must hold all of them.
    small = make_env("arithmetic", digits_max=1)
    test, train = small.problems("test", 500, seed=0), small.problems("train", 500, seed=0)
    assert len(test) + len(train) == 100 and not {p.prompt for p in test} & {p.prompt for p in train}
