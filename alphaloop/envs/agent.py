"""The multi-turn (agent) env API: a task, tools, a final-state verifier and a harm count.

An episode alternates the policy's action -- one tool call on one line, `name arg arg ...`, or
`submit` -- and the env's response (the tool's output, or a clear `error: ...` for a malformed or
failing call), until `submit` or `max_steps` actions. As text, with the policy's parts marked:

    task: delete the .tmp files
    $ [ls]                                  <- the prompt ends with "\\n$ ", the cue for an action
    a.tmp b.txt                             <- the env's answer, then "\\n$ " again
    $ [rm a.tmp]
    ok
    $ [submit]

In tokens the policy ends each action with EOS, and the env inserts `"\\n" + output + "\\n$ "`
(`observation_text`) after it; the inserted tokens are masked out of every loss (`Episode.action_mask`).
Success is decided on the final state (`verify_state`), only after `submit`; harm counts what the
agent broke (`harm`), whether or not it succeeded.

A subclass writes the dataset (`sample_problem`, whose `meta["state"]` holds the initial state as
plain JSON-able data), the tools (`initial_state`, `run_tool`), the rubric (`verify_state`, `harm`)
and a scripted expert (`expert_actions`). Everything else -- replaying a transcript, the gymnasium
`reset`/`step` protocol, the `TextEnv` contract (`expert` and `verify` over the actions joined by
newlines, so single-turn code paths can still check a transcript) -- lives here.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import Field

from alphaloop.envs.base import EnvConfig, Problem, TextEnv, in_test_split

ACTION_CUE = "\n$ "          # ends the prompt and every observation: "your action"
SUBMIT = "submit"


class Mistake(str):
    """An expert action made wrong on purpose, so that the demonstration goes on to show the recovery:
    imitation learns the recovery and not the mistake (its tokens carry no loss; `Episode.info["mistakes"]`
    lists such actions). This is DART (Laskey et al. 2017, "DART: Noise Injection for Robust Imitation
    Learning"): noise injected into the demonstrator's actions, the demonstrator's corrections kept as
    labels. A policy trained on flawless transcripts never sees the states its own errors lead to, and
    does not know how to leave them: after one miscopied name (`mv isol.fif docs` for `isle.fif`) a
    shell policy repeated name guesses until the step limit (11 of 16 held-out failures)."""


def misspelt(action: str) -> Mistake:
    """The action with its command misspelt (an unknown command: an error, never a different action)."""
    name, _, rest = action.partition(" ")
    return Mistake(f"{name[0]}{name}{' ' + rest if rest else ''}")


class ToolError(Exception):
    """A tool call that cannot run (bad arguments, a missing file): its message is shown to the agent."""


@dataclass
class Turn:
    """The env's answer to one action."""

    output: str        # what the agent reads next (the tool's output or "error: ...")
    done: bool         # the agent submitted
    error: bool        # the call was malformed or failed


@dataclass
class Outcome:
    """A whole transcript replayed: the final state and its verdicts."""

    state: Any
    outputs: list[str] = field(default_factory=list)
    submitted: bool = False
    success: bool = False
    harm: float = 0.0
    steps: int = 0
    tool_errors: int = 0


class AgentConfig(EnvConfig):
    """Knobs every agent env has (a subclass's Config may extend this one, or plain `EnvConfig`)."""

    memory: int = Field(0, ge=0, le=64, description="turns of its transcript the policy reads besides the task "
                        "(each an action and the env's answer); 0: the whole transcript")


class AgentEnv(TextEnv):
    """A multi-turn tool-use task. See the module docstring for the protocol and the hooks."""

    multi_turn: ClassVar[bool] = True
    tools: ClassVar[dict[str, str]] = {}    # tool name -> usage line, e.g. {"rm": "rm PATH"}
    max_prompt_chars = 512                   # the longest prompt or observation
    max_action_chars: int = 48               # the longest action (one tool call)
    max_steps: int = 16                      # actions per episode, `submit` included

    def setup(self) -> None:
        self.max_completion_chars = self.max_action_chars

    @property
    def memory(self) -> int:
        """How many of the latest turns the policy reads besides the task (0: all; `collect/agent_memory.py`)."""
        return int(getattr(self.config, "memory", 0) or 0)

    # --- subclass hooks ------------------------------------------------------------------------
    def initial_state(self, problem: Problem) -> Any:
        """A fresh, mutable state built from `problem.meta["state"]` (never shared between episodes)."""
        raise NotImplementedError(f"{type(self).__name__} must implement initial_state() (see docs/agents.md)")

    def run_tool(self, problem: Problem, state: Any, name: str, args: str) -> str:
        """Run tool `name` with the rest of the line `args` on `state` (mutating it); return its output.

        Raise ToolError with a message the agent can act on for any call that cannot run."""
        raise NotImplementedError(f"{type(self).__name__} must implement run_tool() (see docs/agents.md)")

    def verify_state(self, problem: Problem, state: Any) -> bool:
        """Whether the final state completes the task."""
        raise NotImplementedError(f"{type(self).__name__} must implement verify_state() (see docs/agents.md)")

    def harm(self, problem: Problem, state: Any) -> float:
        """What the agent broke (e.g. files lost): 0 when nothing."""
        raise NotImplementedError(f"{type(self).__name__} must implement harm() (see docs/agents.md)")

    def expert_actions(self, problem: Problem, rng: random.Random) -> list[str]:
        """The scripted expert's actions for `problem`, `submit` last (with its configured slips). An action
        wrapped in `Mistake` is played but not imitated: the actions after it show how to recover."""
        raise NotImplementedError(f"{type(self).__name__} must implement expert_actions() (see docs/agents.md)")

    # --- the protocol --------------------------------------------------------------------------
    @staticmethod
    def observation_text(output: str) -> str:
        """The tokens the env inserts after an action: its output and the cue for the next action."""
        return "\n" + output + ACTION_CUE

    def act(self, problem: Problem, state: Any, action: str) -> Turn:
        """One action on `state`. Never raises for anything the policy writes."""
        if not isinstance(action, str):
            return Turn("error: the action is not a string", False, True)
        action = action.strip()
        if action == SUBMIT:
            return Turn("submitted", True, False)
        if len(action) > self.max_action_chars:
            return Turn(f"error: actions are at most {self.max_action_chars} characters", False, True)
        name, _, args = action.partition(" ")
        if name not in self.tools:
            shown = " ".join(name[:16].split())  # one line, whatever the policy wrote
            return Turn(f"error: unknown command '{shown}'", False, True)
        try:
            return Turn(self.run_tool(problem, state, name, args.strip()) or "ok", False, False)
        except ToolError as exc:
            return Turn(f"error: {exc}", False, True)

    def replay(self, problem: Problem, actions: list[str]) -> Outcome:
        """Run `actions` from the initial state, stopping at `submit` or `max_steps`."""
        outcome = Outcome(self.initial_state(problem))
        for action in actions[: self.max_steps]:
            turn = self.act(problem, outcome.state, action)
            outcome.outputs.append(turn.output)
            outcome.steps += 1
            outcome.tool_errors += turn.error
            if turn.done:
                outcome.submitted = True
                break
        return self.judge(problem, outcome)

    def judge(self, problem: Problem, outcome: Outcome) -> Outcome:
        """Fill success (only after submit) and harm of a finished transcript."""
        outcome.success = outcome.submitted and bool(self.verify_state(problem, outcome.state))
        outcome.harm = float(self.harm(problem, outcome.state))
        return outcome

    # --- the TextEnv contract, over actions joined by newlines -------------------------------------
    def expert(self, problem: Problem, rng: random.Random) -> str:
        return "\n".join(self.expert_actions(problem, rng))

    def parse_answer(self, completion: str) -> str | None:
        """`submit` when the transcript ends by submitting, else None (no final answer)."""
        if not isinstance(completion, str):
            return None
        lines = completion.strip().split("\n")
        return SUBMIT if lines and lines[-1].strip() == SUBMIT else None

    def verify(self, problem: Problem, completion: str) -> bool:
        return self.replay(problem, completion.split("\n")).success

    def problem_key(self, problem: Problem) -> str:
        """Many tasks share a prompt ("delete the .tmp files") and differ in the state they start from."""
        return task_key(problem)

    # --- gymnasium: a multi-step episode -----------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        prompt, info = super().reset(seed=seed, options=options)
        self._state = self.initial_state(self.problem)
        self._outcome = Outcome(self._state)
        return prompt, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        """One tool call: (output, reward, terminated, truncated, info). Reward 1.0 on a successful
        submit, else 0; truncated after `max_steps` actions without a submit."""
        if self.problem is None:
            raise RuntimeError(f"env {self.name!r}: call reset() before step()")
        if self._last is not None:
            raise RuntimeError(f"env {self.name!r}: the episode is over; call reset()")
        outcome = self._outcome
        turn = self.act(self.problem, self._state, action)
        outcome.outputs.append(turn.output)
        outcome.steps += 1
        outcome.tool_errors += turn.error
        outcome.submitted = turn.done
        truncated = not turn.done and outcome.steps >= self.max_steps
        info: dict[str, Any] = {"error": turn.error, "steps": outcome.steps}
        reward = 0.0
        if turn.done or truncated:
            self.judge(self.problem, outcome)
            self._last = (str(action), turn.output)
            reward = 1.0 if outcome.success else 0.0
            info |= {"success": outcome.success, "harm": outcome.harm, "tool_errors": outcome.tool_errors}
        return turn.output, reward, turn.done, truncated, info

    def _feedback_texts(self) -> list[str]:
        return ["submitted", "error: the action is not a string",
                f"error: actions are at most {self.max_action_chars} characters",
                "error: unknown command 'xxxxxxxxxxxxxxxx'"]


def task_key(problem: Problem) -> str:
    """What makes two tasks the same task: the prompt and the initial state."""
    return f"{problem.prompt}|{problem.meta.get('state')!r}"


def task_in_test_split(problem_prompt: str, state: Any, test_fraction: float) -> bool:
    """The train/test split of agent tasks, by a stable hash of the prompt and the initial state."""
    return in_test_split(f"{problem_prompt}|{state!r}", test_fraction)


def fresh(value: Any) -> Any:
    """A deep copy, so that no episode's state shares anything with the problem or another episode."""
    return copy.deepcopy(value)
