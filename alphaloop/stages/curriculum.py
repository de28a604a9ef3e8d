"""A length (or any knob) curriculum for the `imitate` stage: train on the easy setting first, move
to the next when the current one is mastered.

    [stages.curriculum]
    knob = "digits_max"     # an env knob
    values = [1, 2, 3]      # its settings in order; the last must be the recipe env's own value
    advance_at = 0.95       # greedy accuracy on the current setting's problems that moves it on
    split = "test"          # where those problems come from ("train": only that what is taught is learnt)

Training batches come from the env with `knob = values[level]`; at every in-training eval the policy
is also scored greedily on `problems` problems of that setting (from its `split`), and at `advance_at`
or better the level moves on (logged as a `curriculum` record). A setting may be too small to hold
problems out: 1-digit sums are 100 problems, about 10 of them in `test`, and a policy that fits the
other 90 can score 0% on those (it memorises rather than adds: docs/generalisation.md), so such a
curriculum asks only that the taught problems are learnt (`split = "train"`).

Curricula that add one digit once the current length is mastered are the classic way to reach long
arithmetic (Zaremba & Sutskever 2014, "Learning to execute"; Bengio et al. 2009, "Curriculum
learning"). The last value must equal the recipe env's own, so training never goes past the
recipe's setting and `heldout` (longer numbers for arithmetic) stays strictly beyond everything
trained on.

The level and its history are part of the trainer state saved in every checkpoint: a resumed run
continues at the level it had reached, and so draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alphaloop.errors import UserError
from alphaloop.evals.evaluate import eval_problem_seed, evaluate
from alphaloop.specs import Strict
from alphaloop.stages.context import StageContext


class CurriculumConfig(Strict):
    knob: str = Field(description="the env knob the curriculum steps through, e.g. 'digits_max'")
    values: list[int | float | str] = Field(min_length=2, description="the knob's settings, easiest first; the "
                                                                      "last must be the recipe env's own value")
    advance_at: float = Field(0.95, gt=0, le=1, description="greedy test accuracy on the current setting that "
                                                            "moves the curriculum to the next")
    problems: int = Field(100, ge=1, le=10**5, description="problems of the current setting scored at each "
                                                           "in-training eval")
    split: Literal["test", "train"] = Field("test", description="where those problems come from: 'test' asks "
                                            "for generalisation within the setting; 'train' only that what is "
                                            "taught is learnt (for settings too small to hold out much)")


class Curriculum:
    """The current level, its training env, and the mastery check run at each in-training eval."""

    def __init__(self, ctx: StageContext, cfg: CurriculumConfig, state: dict[str, Any] | None = None) -> None:
        self.ctx, self.cfg = ctx, cfg
        config = ctx.make_env("train", seed=0).config
        if cfg.knob not in type(config).model_fields:
            raise UserError(f"stages.{ctx.index}.curriculum.knob: env {ctx.recipe.env.name!r} has no knob "
                            f"{cfg.knob!r}")
        final = getattr(config, cfg.knob)
        if cfg.values[-1] != final:
            raise UserError(f"stages.{ctx.index}.curriculum.values: the last value must be the env's own "
                            f"{cfg.knob} = {final!r} (so that training never goes past the recipe's setting), "
                            f"got {cfg.values[-1]!r}")
        self.level: int = state["level"] if state else 0
        self.history: list[dict[str, Any]] = state["history"] if state else []
        self.env = self._env("train", seed=ctx.seed("env"))

    @property
    def value(self) -> int | float | str:
        return self.cfg.values[self.level]

    def _env(self, split: str, seed: int | None = None):
        return self.ctx.make_env(split, seed=seed, **{self.cfg.knob: self.value})

    def check(self, step: int, policy) -> str:
        """Score `policy` on the current setting; move on at `advance_at`. Returns a progress note."""
        if self.level == len(self.cfg.values) - 1:
            return f"curriculum {self.cfg.knob}={self.value}"
        env = self._env(self.cfg.split)
        seed = eval_problem_seed(self.ctx.recipe.seed, f"curriculum-{self.level}")
        problems = env.problems(self.cfg.split, self.cfg.problems, seed=seed)
        policy.model.eval()
        accuracy = evaluate(self.ctx.stage.name, policy, env, problems, ["greedy"], seed=0)[0]["metrics"]["accuracy"]
        policy.model.train()
        record = {"knob": self.cfg.knob, "value": self.value, "accuracy": accuracy}
        if accuracy >= self.cfg.advance_at:
            self.level += 1
            self.env = self._env("train", seed=self.ctx.seed("env"))
            record["advanced_to"] = self.value
        self.history.append({"step": step, **record})
        self.ctx.log(step, kind="curriculum", **record)
        return f"curriculum {self.cfg.knob}={self.value} ({accuracy:.0%})"

    def state(self) -> dict[str, Any]:
        return {"level": self.level, "history": self.history}

    def summary(self) -> dict[str, Any]:
        """Where the curriculum ended and the step each level was reached at (for the stage's result)."""
        reached = {str(self.cfg.values[0]): 0} | {str(r["advanced_to"]): r["step"] for r in self.history
                                                   if "advanced_to" in r}
        return {"curriculum_final_value": self.value, "curriculum_reached_at_step": reached}
