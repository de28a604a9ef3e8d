"""A complete alphaloop env in one file: reverse a word (see docs/custom-env.md).

Prompt `cabbage=`, completion `egabbac`. The expert has a systematic bug, like the arithmetic
teacher: on a share `misconception_rate` of the problems it writes a doubled letter once
(`egabac`), so imitation learns the bug and RL against the verifier can unlearn it.

Use it without installing anything:
    make_env("docs/examples/reverse_env.py:ReverseEnv", split="test", length_max=5)
or in a recipe:  [env]  name = "docs/examples/reverse_env.py:ReverseEnv"
"""

from __future__ import annotations

import random

from pydantic import Field, model_validator

from alphaloop.envs import EnvConfig, Problem, TextEnv, in_test_split

LETTERS = "abcdefgh"  # a small alphabet makes doubled letters (the expert's weak spot) common


class ReverseConfig(EnvConfig):
    length_min: int = Field(3, ge=1, le=40, description="shortest word (train/test)")
    length_max: int = Field(6, ge=1, le=40, description="longest word (train/test)")
    heldout_length: int = Field(9, ge=1, le=40, description="word length of the heldout split")
    misconception_rate: float = Field(0.5, ge=0, le=1,
                                      description="P(the expert writes doubled letters once)")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of train/test words that are test")

    @model_validator(mode="after")
    def _lengths(self) -> ReverseConfig:
        if self.length_min > self.length_max:
            raise ValueError(f"length_min ({self.length_min}) must be <= length_max ({self.length_max})")
        return self


class ReverseEnv(TextEnv):
    name = "reverse"
    Config = ReverseConfig
    alphabet = LETTERS + "="  # every character of prompts, completions and answers
    config: ReverseConfig

    def setup(self) -> None:
        """Per-instance bounds: gymnasium's Text spaces and the sampler's max_new_tokens use them."""
        longest = max(self.config.length_max, self.config.heldout_length)
        self.max_prompt_chars = longest + 1
        heldout = self.split == "heldout"
        self.max_completion_chars = self.config.heldout_length if heldout else self.config.length_max

    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        c = self.config
        for _ in range(10_000):  # train and test share a distribution; a stable hash of the word splits them
            length = c.heldout_length if split == "heldout" else rng.randint(c.length_min, c.length_max)
            word = "".join(rng.choice(LETTERS) for _ in range(length))
            if split == "heldout" or in_test_split(word, c.test_fraction) == (split == "test"):
                return Problem(prompt=f"{word}=", answer=word[::-1], meta={"word": word})
        raise ValueError(f"env 'reverse': split {split!r} is (almost) empty with these knobs")

    def expert(self, problem: Problem, rng: random.Random) -> str:
        reversed_word = problem.meta["word"][::-1]
        if rng.random() >= self.config.misconception_rate:
            return reversed_word
        return "".join(ch for i, ch in enumerate(reversed_word) if i == 0 or ch != reversed_word[i - 1])

    def parse_answer(self, completion: str) -> str | None:
        """The whole completion, stripped, if it is a word over LETTERS; else None. Never raises."""
        if not isinstance(completion, str):
            return None
        answer = completion.strip()
        return answer if answer and all(ch in LETTERS for ch in answer) else None
