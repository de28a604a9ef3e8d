"""The same conformance checks on every agent env (as OpenSpiel runs one suite on every game):
gymnasium's checker, a full expert episode through reset/step, the TextEnv contract over the
expert's transcript, and random play that never crashes."""

import random
import warnings
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

from alphaloop.envs import make_env

COUNTER = f"{Path(__file__).resolve().parents[2]}/docs/examples/counter_agent.py:CounterEnv"
PERFECT = {"shell": {"slip": 0.0, "typo": 0.0, "harm_slip": 0.0}, "code": {"slip": 0.0},
           "invoices": {"slip": 0.0, "typo": 0.0, "harm_slip": 0.0}, COUNTER: {"slip": 0.0}}


@pytest.mark.parametrize("spec", list(PERFECT))
def test_gymnasium_checker_and_a_full_expert_episode(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(2):
            check_env(make_env(spec, seed=seed), skip_render_check=True)
    env = make_env(spec, seed=0, **PERFECT[spec])
    prompt, info = env.reset(seed=4)
    assert prompt.endswith("\n$ ") and "state" in info["meta"]
    for action in env.expert_actions(env.problem, random.Random(0)):
        output, reward, terminated, truncated, step_info = env.step(action)
    assert (output, reward, terminated, truncated) == ("submitted", 1.0, True, False)
    assert step_info["success"] and step_info["harm"] == 0.0
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("submit")
    completion = env.expert(env.problem, random.Random(0))
    assert env.parse_answer(completion) == "submit" and env.verify(env.problem, completion)


@pytest.mark.parametrize("spec", list(PERFECT))
def test_random_play_never_crashes(spec):
    env = make_env(spec, seed=1)
    rng = random.Random(0)
    tools = [*env.tools, "submit", "nonsense", ""]
    for episode in range(5):
        env.reset(seed=episode)
        for _ in range(env.max_steps):
            words = [rng.choice(tools)] + ["".join(rng.choice(env.alphabet) for _ in range(rng.randint(0, 6)))
                                           for _ in range(rng.randint(0, 2))]
            output, reward, terminated, truncated, _ = env.step(" ".join(words))
            assert isinstance(output, str) and reward in (0.0, 1.0)
            if terminated or truncated:
                break


def test_a_missing_hook_is_named():
    from alphaloop.envs import AgentEnv, Problem

    class Half(AgentEnv):
        name = "half"
        alphabet = "abc"

        def sample_problem(self, rng, split):
            return Problem(prompt="task\n$ ", answer="", meta={"state": {}})

    env = Half()
    problem = env.problems("test", 1, seed=0)[0]
    with pytest.raises(NotImplementedError, match="Half must implement initial_state"):
        env.replay(problem, ["submit"])
