"""The text-env API: an env is a dataset plus a rubric.

A single-turn text task is a one-step `gymnasium.Env`: `reset()` shows a prompt, `step(text)`
scores one completion and ends the episode. A subclass writes four hooks -- `sample_problem`
(the dataset), `expert` (demonstrations, possibly deliberately imperfect), `parse_answer` and,
if exact match is not enough, `verify` (the rubric) -- and a pydantic `Config` with its knobs.
Everything else (seeding, splits, fixed eval sets, invalid actions, the gymnasium spaces) lives
here so that every env behaves the same and `gymnasium.utils.env_checker.check_env` passes.

Invalid actions never raise: a non-string, an overlong string or one without a parseable
final answer gets reward 0 and an observation saying why, because a policy's garbage is data,
not a bug.
"""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
import pydantic
from gymnasium import spaces

SPLITS = ("train", "test", "heldout")

# Characters of the env's own feedback observations ("invalid answer: ..."); observations are
# prompts or feedback, so the observation charset is the env's alphabet plus these.
FEEDBACK_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 :,.()"


@dataclass(frozen=True)
class Problem:
    """One task instance. `prompt` is what the policy sees; `answer` the canonical final answer."""

    prompt: str
    answer: str
    meta: dict = field(default_factory=dict, compare=False)


class EnvConfig(pydantic.BaseModel, extra="forbid", frozen=True):
    """Base of every env's knobs; give each field a `Field(description=...)` for `alphaloop envs`."""


def stable_unit(key: str) -> float:
    """A hash of `key` mapped to [0, 1), the same in every process and Python version.

    Python's `hash()` is salted per process, so splits built on it would differ between runs;
    blake2b is not.
    """
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_test_split(key: str, test_fraction: float) -> bool:
    """Whether the problem identified by `key` belongs to the test split (else train)."""
    return stable_unit(key) < test_fraction


def format_knob_error(env_name: str, error: pydantic.ValidationError, knobs: dict[str, Any],
                      config: type[EnvConfig]) -> str:
    """One readable message per bad knob: env, knob, given value and what is allowed."""
    lines = []
    for item in error.errors():
        knob = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            lines.append(f"env {env_name!r}: unknown knob {knob!r} (given {item['input']!r}); "
                         f"allowed knobs: {', '.join(config.model_fields)}")
        elif knob:
            info = config.model_fields.get(knob.split(".")[0])
            allowed = f" ({knob}: {info.description})" if info is not None and info.description else ""
            lines.append(f"env {env_name!r}: knob {knob}={knobs.get(knob, item['input'])!r} is not allowed: "
                         f"{item['msg'].removeprefix('Value error, ')}{allowed}")
        else:  # a check across knobs
            lines.append(f"env {env_name!r}: {item['msg'].removeprefix('Value error, ')} (given {knobs})")
    return "; ".join(lines)


class TextEnv(gymnasium.Env):
    """A single-turn text task: `reset()` gives a prompt, one `step(completion)` ends the episode.

    Subclasses set `name`, `Config`, `alphabet`, `max_completion_chars` and `max_prompt_chars`,
    and implement `sample_problem`, `expert` and `parse_answer` (and optionally `verify`).
    """

    name: ClassVar[str] = "text"
    Config: ClassVar[type[EnvConfig]] = EnvConfig
    alphabet: ClassVar[str] = ""  # every character of prompts, expert completions and answers
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    max_prompt_chars: int = 256  # upper bound on a prompt's length (the observation space)
    max_completion_chars: int  # upper bound on a correct completion's length (max_new_tokens)
    # The position ids a freshly built policy uses for this task (policies/positions.py): None is the
    # usual 0, 1, 2, ...; arithmetic with positions = "coupled" asks for "coupled" (docs/generalisation.md).
    position_rule: str | None = None
    position_offsets: int = 0   # with a rule: shift each problem's ids by 0..N (a hash of the prompt)

    def __init__(self, split: str = "train", seed: int | None = None, render_mode: str | None = None,
                 **knobs: Any):
        check_split(split, type(self).name)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"env {self.name!r}: render_mode={render_mode!r} is not supported "
                             f"(allowed: {self.metadata['render_modes']} or None)")
        try:
            self.config = self.Config(**knobs)
        except pydantic.ValidationError as exc:
            raise ValueError(format_knob_error(self.name, exc, knobs, self.Config)) from None
        self.split = split
        self.render_mode = render_mode
        self._pending_seed = seed
        self.problem: Problem | None = None
        self._last: tuple[str, str] | None = None  # (action, observation) of the finished episode
        self.setup()
        if not self.alphabet:
            raise TypeError(f"{type(self).__name__} must set the class attribute `alphabet`")
        if not isinstance(getattr(self, "max_completion_chars", None), int):
            raise TypeError(f"{type(self).__name__} must set `max_completion_chars` (an int) in setup()")
        self.action_space = spaces.Text(max_length=self.max_completion_chars, min_length=0,
                                        charset=self.alphabet)
        longest_feedback = max(len(text) for text in self._feedback_texts())
        charset = "".join(sorted(set(self.alphabet + FEEDBACK_CHARS)))
        self.observation_space = spaces.Text(max_length=max(self.max_prompt_chars, longest_feedback),
                                             min_length=1, charset=charset)

    # --- subclass hooks --------------------------------------------------------------------
    def setup(self) -> None:
        """Derive per-instance values (e.g. `max_completion_chars`) from `self.config` and `self.split`."""

    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        raise NotImplementedError

    def expert(self, problem: Problem, rng: random.Random) -> str:
        """A full completion (chain of thought + final answer) for `problem`."""
        raise NotImplementedError

    def parse_answer(self, completion: str) -> str | None:
        """The final answer in canonical form, or None if there is none. Must never raise."""
        raise NotImplementedError

    def verify(self, problem: Problem, completion: str) -> bool:
        """Exact match of the parsed final answer; override for a different rubric."""
        return self.parse_answer(completion) == problem.answer

    # --- provided ----------------------------------------------------------------------------
    def problems(self, split: str, n: int, seed: int, patience: int = 2000) -> list[Problem]:
        """`n` distinct problems of `split`, the same for the same (split, n, seed): fixed eval sets.

        Problems are distinct by `problem_key` (the prompt). When the split has fewer than `n` problems,
        this returns those found before `patience` draws in a row produced nothing new, i.e. (almost
        surely) all.
        """
        check_split(split, self.name)
        if n < 0:
            raise ValueError(f"problems: n must be >= 0, got {n}")
        rng = random.Random(seed)
        found: dict[str, Problem] = {}
        misses = 0
        while len(found) < n and misses < patience:
            problem = self.sample_problem(rng, split)
            key = self.problem_key(problem)
            if key in found:
                misses += 1
            else:
                found[key] = problem
                misses = 0
        return list(found.values())

    def problem_key(self, problem: Problem) -> str:
        """What makes two problems the same problem in a fixed eval set: the prompt."""
        return problem.prompt

    def reward(self, problem: Problem, completion: str) -> float:
        return 1.0 if self.verify(problem, completion) else 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        """A new problem of `self.split`: (prompt, {"split", "meta"}). The answer is not revealed."""
        if seed is None and self._pending_seed is not None:  # the constructor's seed seeds the first reset
            seed = self._pending_seed
        self._pending_seed = None
        super().reset(seed=seed)
        rng = random.Random(int(self.np_random.integers(0, 2**63 - 1)))
        self.problem = self.sample_problem(rng, self.split)
        self._last = None
        return self.problem.prompt, {"split": self.split, "meta": copy.deepcopy(self.problem.meta)}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        """Score one completion; the episode always ends. Reward 1.0 iff `verify`.

        Unlike `verify`, which scores whatever it is given, a step also rejects actions longer
        than `max_completion_chars` (the action space), as a sampler could not produce them.
        """
        if self.problem is None:
            raise RuntimeError(f"env {self.name!r}: call reset() before step()")
        if self._last is not None:
            raise RuntimeError(f"env {self.name!r}: the episode is over (one step per episode); call reset()")
        problem = self.problem
        parsed: str | None = None
        if not isinstance(action, str):
            observation = "invalid answer: the action is not a string"
        elif len(action) > self.max_completion_chars:
            observation = f"invalid answer: longer than {self.max_completion_chars} characters"
        else:
            parsed = self._safe_parse(action)
            observation = "invalid answer: could not parse a final answer" if parsed is None else ""
        success = parsed is not None and self._safe_verify(problem, action)
        if parsed is not None:
            observation = "correct" if success else "wrong answer"
        self._last = (action if isinstance(action, str) else repr(action), observation)
        info = {"answer": problem.answer, "parsed": parsed, "success": success,
                "meta": copy.deepcopy(problem.meta)}
        return observation, 1.0 if success else 0.0, True, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self.problem is None:
            return "(call reset() first)"
        if self._last is None:
            return self.problem.prompt
        return f"{self.problem.prompt}{self._last[0]}\n-> {self._last[1]}"

    # --- helpers -------------------------------------------------------------------------------
    def _safe_parse(self, completion: str) -> str | None:
        try:
            parsed = self.parse_answer(completion)
        except Exception:  # a parser bug must not crash a rollout; it scores 0 instead
            return None
        return parsed if isinstance(parsed, str) else None

    def _safe_verify(self, problem: Problem, completion: str) -> bool:
        try:
            return bool(self.verify(problem, completion))
        except Exception:
            return False

    def _feedback_texts(self) -> list[str]:
        return ["correct", "wrong answer", "invalid answer: the action is not a string",
                "invalid answer: could not parse a final answer",
                f"invalid answer: longer than {self.max_completion_chars} characters"]


def check_split(split: Any, env_name: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"env {env_name!r}: unknown split {split!r} (allowed: {', '.join(SPLITS)})")
