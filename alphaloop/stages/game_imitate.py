"""Stage `game_imitate`: AlphaGo's supervised stage (Silver et al. 2016). An expert (depth-limited
alpha-beta, optionally noisy; perfect play for tic-tac-toe) plays games and the net learns the
expert's move (cross-entropy) and the outcome (MSE): the AlphaZero loss with one-hot targets.

The expert games are regenerated identically from the seed on resume, so checkpoints stay small.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from alphaloop.collect.selfplay import imitation_games, to_examples
from alphaloop.errors import UserError
from alphaloop.games.alphabeta import AlphaBetaPlayer
from alphaloop.games.players import PerfectTicTacToe
from alphaloop.games.registry import game_class
from alphaloop.games.replay import ReplayBuffer
from alphaloop.learners.alphazero import train_steps
from alphaloop.specs import RunSpec
from alphaloop.stages.context import StageContext
from alphaloop.stages.game_settings import GameEvalFields, TrainPrecision, train_precision_field
from alphaloop.stages.game_training import final_metrics, game_eval, game_of, start_training
from alphaloop.stages.loop import StageLoop


class GameImitateStageConfig(GameEvalFields):
    kind: Literal["game_imitate"]
    expert: Literal["alphabeta", "perfect"] = Field("alphabeta", description="perfect: tic-tac-toe only")
    depth: int = Field(4, ge=1, le=64, description="expert alpha-beta depth (plies)")
    noise: float = Field(0.0, ge=0, le=1, description="chance the expert plays (and teaches) a random move")
    epsilon: float = Field(0.1, ge=0, le=1, description="probability a random move is played, target kept")
    games: int = Field(300, ge=1, le=10**6, description="expert games generated (once, from the seed)")
    augment: bool = True
    steps: int = Field(500, ge=1, le=10**7)
    batch_size: int = Field(128, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    train_precision: TrainPrecision = train_precision_field()
    eval_every: int = Field(250, ge=1)
    checkpoint_every: int = Field(250, ge=1)


    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        problems = super().check(run, trained)
        if self.expert == "perfect" and run.env.name != "tictactoe":
            problems.append(f"expert: 'perfect' exists for tictactoe only, not {run.env.name!r}; use 'alphabeta'")
        return problems


def expert_buffer(game: str, cfg: GameImitateStageConfig, seed: int):
    """The expert's games as a replay buffer holding all of them (regenerated identically on resume)."""
    if cfg.expert == "perfect":
        if game != "tictactoe":
            raise UserError(f"expert 'perfect' exists for tictactoe only, not {game!r}; use 'alphabeta'")
        expert = PerfectTicTacToe(seed)
    else:
        expert = AlphaBetaPlayer(cfg.depth, seed=seed, noise=cfg.noise)
    records = imitation_games(game, expert, cfg.games, np.random.default_rng(seed), epsilon=cfg.epsilon)
    examples = to_examples(records, augment=cfg.augment)
    cls = game_class(game)
    buffer = ReplayBuffer(len(examples), cls.observation_shape, cls.num_actions)
    buffer.add_game(examples)
    return buffer


def run_game_imitate(ctx: StageContext, cfg: GameImitateStageConfig) -> dict[str, Any]:
    game = game_of(ctx)
    buffer = expert_buffer(game, cfg, ctx.seed("expert") % (2**31))
    loop = StageLoop(ctx, cfg.steps, cfg.eval_every, cfg.checkpoint_every)
    net, optimizer, precision = start_training(ctx, cfg, loop)
    evaluate = game_eval(ctx, cfg, net, game)
    rng = np.random.default_rng(ctx.seed("generator"))
    stats = {}
    if loop.state is not None:
        rng.bit_generator.state = loop.state["generator"]
        stats = loop.state["stats"]
    for step in loop.steps():
        stats = train_steps(net, optimizer, buffer, 1, cfg.batch_size, rng, precision)
        ctx.log(step + 1, **{k: round(v, 6) for k, v in stats.items() if k != "steps"})
        loop.end_step(step + 1, net, f"loss {stats['loss']:.3f}", evaluate,
                      lambda stats=stats: {"optimizer": optimizer.state_dict(), "stats": stats,
                                           "generator": rng.bit_generator.state})
    return loop.finish(net, final_metrics(loop.evals, stats)) | {"train_precision": precision}
