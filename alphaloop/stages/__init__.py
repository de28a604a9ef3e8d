"""Stages: one file per stage kind, and the one table of them.

A recipe is an ordered list of stages; each kind is a config class (its recipe table, a
`specs.StageConfig` with `kind` as a Literal) and a run function `run(ctx, cfg) -> result`. The
recipe schema, its error messages and the runner's dispatch are all read from `STAGES`, so a new
stage is one new file plus one line here (docs/architecture.md walks through one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alphaloop.specs import StageConfig
from alphaloop.stages.alphazero import AlphaZeroStageConfig, run_alphazero
from alphaloop.stages.context import StageContext
from alphaloop.stages.eval import EvalStageConfig, run_eval
from alphaloop.stages.game_eval import GameEvalStageConfig, run_game_eval
from alphaloop.stages.game_imitate import GameImitateStageConfig, run_game_imitate
from alphaloop.stages.imitate import ImitateStageConfig, run_imitate
from alphaloop.stages.rl import RLStageConfig, run_rl


@dataclass(frozen=True)
class Stage:
    """A stage kind: its settings, what runs it, and whether it spreads work over `[scale]` workers."""

    config: type[StageConfig]
    run: Callable[[StageContext, Any], dict[str, Any]]
    uses_workers: bool = False


STAGES: dict[str, Stage] = {
    "imitate": Stage(ImitateStageConfig, run_imitate),
    "rl": Stage(RLStageConfig, run_rl, uses_workers=True),
    "eval": Stage(EvalStageConfig, run_eval),
    "game_imitate": Stage(GameImitateStageConfig, run_game_imitate),
    "alphazero": Stage(AlphaZeroStageConfig, run_alphazero, uses_workers=True),
    "game_eval": Stage(GameEvalStageConfig, run_game_eval),
}

__all__ = ["STAGES", "Stage", "StageConfig", "StageContext"]
