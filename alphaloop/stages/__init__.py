"""Stages: one file per stage kind, and the one table of them.

A recipe is an ordered list of stages; each kind is a config class (its recipe table, a
`specs.StageConfig` with `kind` as a Literal) and a run function `run(ctx, cfg) -> result`. The
recipe schema, its error messages and the runner's dispatch are all read from `STAGES`, so a new
stage is one new file plus one line here (docs/architecture.md walks through one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from alphaloop.specs import StageConfig
from alphaloop.stages.alphazero import AlphaZeroStageConfig, run_alphazero
from alphaloop.stages.best_of_n import BestOfNStageConfig, run_best_of_n
from alphaloop.stages.context import StageContext
from alphaloop.stages.distill import DistillStageConfig, run_distill
from alphaloop.stages.dpo import DPOStageConfig, run_dpo
from alphaloop.stages.eval import EvalStageConfig, run_eval
from alphaloop.stages.expert_iteration import ExpertIterationStageConfig, run_expert_iteration
from alphaloop.stages.game_eval import GameEvalStageConfig, run_game_eval
from alphaloop.stages.game_imitate import GameImitateStageConfig, run_game_imitate
from alphaloop.stages.imitate import ImitateStageConfig, run_imitate
from alphaloop.stages.reward_model import RewardModelStageConfig, run_reward_model
from alphaloop.stages.rl import RLStageConfig, run_rl


@dataclass(frozen=True)
class Stage:
    """A stage kind: its settings, what runs it, what it needs and leaves.

    `env`: the env family it works on ('text': an LM policy on a text env, 'game': a policy-value net
    on a board game, None: any); `trains`: it leaves a policy later stages can start from or
    evaluate; `uses_workers`: it spreads work over the recipe's `[scale]` workers."""

    config: type[StageConfig]
    run: Callable[[StageContext, Any], dict[str, Any]]
    env: Literal["text", "game"] | None = None
    trains: bool = False
    uses_workers: bool = False


STAGES: dict[str, Stage] = {
    "imitate": Stage(ImitateStageConfig, run_imitate, env="text", trains=True),
    "rl": Stage(RLStageConfig, run_rl, env="text", trains=True, uses_workers=True),
    "reward_model": Stage(RewardModelStageConfig, run_reward_model, env="text"),
    "dpo": Stage(DPOStageConfig, run_dpo, env="text", trains=True),
    "expert_iteration": Stage(ExpertIterationStageConfig, run_expert_iteration, env="text", trains=True),
    "best_of_n": Stage(BestOfNStageConfig, run_best_of_n, env="text"),
    "distill": Stage(DistillStageConfig, run_distill, env="text", trains=True),
    "eval": Stage(EvalStageConfig, run_eval, env="text"),
    "game_imitate": Stage(GameImitateStageConfig, run_game_imitate, env="game", trains=True),
    "alphazero": Stage(AlphaZeroStageConfig, run_alphazero, env="game", trains=True, uses_workers=True),
    "game_eval": Stage(GameEvalStageConfig, run_game_eval, env="game"),
}

__all__ = ["STAGES", "Stage", "StageConfig", "StageContext"]
