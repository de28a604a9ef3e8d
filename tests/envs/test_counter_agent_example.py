"""The multi-turn env example of docs/agents.md works as the page says, through a recipe too."""

import random
from pathlib import Path

from alphaloop import runner
from alphaloop.envs import make_env
from alphaloop.recipe import validate_recipe

SPEC = f"{Path(__file__).resolve().parents[2]}/docs/examples/counter_agent.py:CounterEnv"


def test_tools_expert_and_splits():
    env = make_env(SPEC, slip=0.0)
    problem = env.problems("test", 1, seed=0)[0]
    outcome = env.replay(problem, env.expert_actions(problem, random.Random(0)))
    assert outcome.success and outcome.harm == 0
    state = env.initial_state(problem)
    assert env.act(problem, state, "inc x").output == "error: usage: inc n"
    assert env.act(problem, state, "jump").output == "error: unknown command 'jump'"
    heldout = env.problems("heldout", 50, seed=0)
    assert heldout and all(p.meta["horizon"] >= 4 for p in heldout)


def test_a_recipe_trains_and_evaluates_it(tmp_path):
    recipe = validate_recipe({
        "name": "counter", "seed": 0, "threads": 1, "env": {"name": SPEC},
        "policy": {"arch": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
                            "intermediate_size": 64}},
        "stages": [{"kind": "imitate", "steps": 5, "batch_size": 8, "eval_every": 5, "eval_problems": 5},
                   {"kind": "rl", "steps": 2, "prompts_per_step": 2, "group_size": 2, "eval_every": 2,
                    "eval_problems": 5},
                   {"kind": "eval", "policies": ["expert", "rl"], "decoders": ["greedy", "pass^2"], "problems": 6}]})
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)
    expert = next(r for r in summary["evals"] if r["policy"] == "expert" and r["decoder"] == "pass^2")
    assert 0 < expert["metrics"]["pass^1"] <= 1 and "harm_rate" in expert["metrics"]
