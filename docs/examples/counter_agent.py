"""A multi-turn env in one file (docs/agents.md): bring a counter to a target with `inc` and `dec`.

    task: make the counter 3
    $ show          -> 1
    $ inc 2         -> 3
    $ submit        -> submitted

Run it with `[env] name = "docs/examples/counter_agent.py:CounterEnv"` in a recipe.
"""

from __future__ import annotations

import random
import string

from pydantic import Field

from alphaloop.envs import AgentEnv, EnvConfig, Problem, ToolError, in_test_split


class CounterConfig(EnvConfig):
    top: int = Field(5, ge=1, le=9, description="targets and starts are 0..top")
    slip: float = Field(0.2, ge=0, le=1, description="expert: chance of submitting without checking")


class CounterEnv(AgentEnv):
    name = "counter"
    Config = CounterConfig
    alphabet = string.ascii_lowercase + string.digits + " :'\n$"
    tools = {"show": "show", "inc": "inc n", "dec": "dec n"}

    def setup(self) -> None:
        self.max_action_chars, self.max_steps = 8, 6
        super().setup()

    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        while True:
            start, target = rng.randint(0, self.config.top), rng.randint(0, self.config.top)
            heldout = abs(target - start) >= 4   # the largest moves are never trained on
            if split == "heldout" and heldout or split != "heldout" and not heldout and (
                    (split == "test") == in_test_split(f"{start}-{target}", 0.3)):
                break
        return Problem(prompt=f"task: make the counter {target}\n$ ", answer=str(target),
                       meta={"state": {"value": start}, "target": target, "horizon": abs(target - start)})

    def initial_state(self, problem: Problem) -> dict:
        return dict(problem.meta["state"])

    def run_tool(self, problem: Problem, state: dict, name: str, args: str) -> str:
        if name == "show":
            return str(state["value"])
        if not args.isdigit():
            raise ToolError(f"usage: {self.tools[name]}")
        state["value"] += int(args) if name == "inc" else -int(args)
        return str(state["value"])

    def verify_state(self, problem: Problem, state: dict) -> bool:
        return state["value"] == problem.meta["target"]

    def harm(self, problem: Problem, state: dict) -> float:
        return float(state["value"] < 0)   # a negative counter breaks whoever reads it

    def expert_actions(self, problem: Problem, rng: random.Random) -> list[str]:
        delta = problem.meta["target"] - problem.meta["state"]["value"]
        if rng.random() < self.config.slip:
            return ["submit"]
        move = [f"inc {delta}"] if delta > 0 else [f"dec {-delta}"] if delta < 0 else []
        return ["show", *move, "submit"]
