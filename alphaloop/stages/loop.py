"""The loop every training stage shares, written once:

    resume from the newest good checkpoint (or start fresh)
    for each remaining step:
        the stage's own work (collect, learn, log)          <- the stage's code, in its own file
        in-training eval every `eval_every` steps and after the last
        progress line
        checkpoint every `checkpoint_every` steps and after the last (holding the evals so far)
    the final policy, atomically, and the stage's result

A stage writes its step in a plain `for step in loop.steps():` and ends it with `loop.end_step(...)`,
so the loop never hides what a step does (nanochat's style), and resume, eval and checkpoint
cadence behave the same in every stage.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphaloop import interrupt
from alphaloop.heap import TRIM_EVERY, trim_heap
from alphaloop.stages.context import StageContext

Evaluate = Callable[[int], tuple[list[dict[str, Any]], str]]   # step -> (eval records, progress note)


class StageLoop:
    """Resume, eval and checkpoint cadence, and the finish of one training stage.

    An `Evaluate` callable, `evaluate(step)`, runs the stage's in-training eval and returns its
    records (kept in `evals`, saved in every checkpoint and returned in the result) and a short note
    for the progress line. After `resume()`, `start` is the first step to run and `state` the
    checkpoint's trainer state (None on a fresh start)."""

    def __init__(self, ctx: StageContext, total: int, eval_every: int, checkpoint_every: int) -> None:
        self.ctx = ctx
        self.total = total
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.start = 0
        self.evals: list[dict[str, Any]] = []
        self.state: dict[str, Any] | None = None
        self._task: int | None = None

    def resume(self) -> Path | None:
        """The policy directory of this stage's newest good checkpoint (RNGs, `start`, `evals` and
        `state` restored, metrics log cut back to it), or None to start fresh."""
        resumed = self.ctx.load_checkpoint()
        if resumed is None:
            return None
        policy_dir, self.state = resumed
        self.start, self.evals = self.state["step"], self.state["evals"]
        return policy_dir

    def eval_at_start(self, evaluate: Evaluate) -> None:
        """Evaluate the starting policy (step 0) once, so a curve shows where training began."""
        if self.start == 0 and not self.evals:
            self.evals.extend(evaluate(0)[0])

    def steps(self) -> range:
        """The steps left to run (0-based), with a progress bar for the whole stage."""
        self._task = self.ctx.new_progress_task(self.total, completed=self.start)
        return range(self.start, self.total)

    def due(self, done: int, every: int) -> bool:
        return done % every == 0 or done == self.total

    def end_step(self, done: int, policy, info: str, evaluate: Evaluate,
                 trainer_state: Callable[[], dict[str, Any]]) -> None:
        """After step `done` (1-based): `evaluate` when due, show `info` (+ the eval's note),
        checkpoint `policy` when due with `trainer_state()` (called only then) and the evals so far."""
        interrupt.check()   # a Ctrl-C that landed where Python drops it (a __del__) stops the run here
        if self.due(done, self.eval_every):
            records, note = evaluate(done)
            self.evals.extend(records)
            info += "  " + note
        self.ctx.progress.update(self._task, completed=done, info=info)
        if self.due(done, self.checkpoint_every):
            self.ctx.save_checkpoint(done, policy, {"evals": self.evals, **trainer_state()})
        if done % TRIM_EVERY == 0:
            trim_heap()   # steps of ever-changing tensor sizes fragment the C heap (see heap.py)

    def finish(self, policy, final: dict[str, Any]) -> dict[str, Any]:
        """The stage's result: steps, final metrics, every eval record, and the final policy's directory."""
        return {"steps": self.total, "final": final, "evals": self.evals,
                "policy_dir": self.ctx.save_final_policy(policy.save)}
