"""Stage `alphazero`: the loop of Silver et al. 2017 ("Mastering the game of Go without human
knowledge"), at toy scale and fully in lock-step:

    self-play:  G games at once, MCTS (PUCT, or the Gumbel root of Danihelka et al. 2022) over the
                NetEvaluator -> positions with visit-count targets pi and outcomes z; the G games are
                split over the recipe's `[scale] workers` (in this process or on Ray actors,
                `alphaloop.scale`), each chunk seeded from the round's draw and its index;
                optionally with playout-cap randomisation (Wu 2019: `fast_simulations`,
                `full_fraction`, see `selfplay.play_games`)
    replay:     the positions and their board symmetries go into a FIFO buffer; the value target is
                z, or (1 - w) z + w q with the search's root value q (`value_q_weight`)
    learn:      `train_steps` Adam steps on  l = (z - v)^2 - pi^T log p  (+ L2 via weight decay),
                at a constant or cosine-annealed learning rate (`lr`, `lr_final`)
    evaluate:   matches vs a random and a strong player, both colours, raw net and net + search

Resume: a checkpoint holds the net, the optimizer, the replay buffer, the round and every RNG
(including the stage's numpy Generator), so a run killed with `kill -9` and resumed ends with the
same summary as an uninterrupted one.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from alphaloop.collect.selfplay import play_job, self_play_jobs, to_examples
from alphaloop.games.registry import game_class
from alphaloop.games.replay import ReplayBuffer
from alphaloop.learners.alphazero import train_steps
from alphaloop.learners.schedules import cosine_between
from alphaloop.policies.nets import PolicyValueNet
from alphaloop.scale import make_workers, worker_threads
from alphaloop.search import GumbelConfig, MCTSConfig
from alphaloop.stages.context import StageContext
from alphaloop.stages.game_settings import GameEvalFields, TrainPrecision, train_precision_field
from alphaloop.stages.game_training import final_metrics, game_eval, game_of, start_training
from alphaloop.stages.loop import StageLoop


class AlphaZeroStageConfig(GameEvalFields):
    kind: Literal["alphazero"]
    rounds: int = Field(25, ge=1, le=10**6, description="self-play -> train -> (eval) rounds")
    games_per_round: int = Field(64, ge=1, le=10**6, description="self-play games per round, played in lock-step")
    search: Literal["mcts", "gumbel"] = "mcts"
    simulations: int = Field(32, ge=1, le=10**6, description="search simulations per self-play move")
    c_puct: float = Field(1.25, gt=0)
    dirichlet_alpha: float = Field(1.0, gt=0, description="root noise Dir(alpha); ~10 / legal moves")
    dirichlet_fraction: float = Field(0.25, ge=0, le=1)
    max_considered: int = Field(16, ge=1, le=4096, description="Gumbel: root actions considered")
    temperature_moves: int = Field(4, ge=0, le=10**4, description="moves sampled from N^(1/tau=1) before argmax play")
    search_batch: int = Field(8, ge=1, le=4096, description="leaves per tree per evaluator call")
    fast_simulations: int = Field(0, ge=0, le=10**6, description="playout-cap randomisation (KataGo): moves "
                                  "searched with this many simulations, no noise, not recorded; 0 = off (mcts only)")
    full_fraction: float = Field(0.25, gt=0, le=1, description="with fast_simulations: chance a move gets the full "
                                 "search (`simulations`, noise) and is recorded for training")
    value_q_weight: float = Field(0.0, ge=0, le=1, description="value target (1 - w) z + w q: z the game outcome, "
                                  "q the search's root value (Willemsen et al. 2021); 0 = AlphaZero's z")
    augment: bool = Field(True, description="add the board symmetries of every position")
    buffer_size: int = Field(20000, ge=1, le=10**8, description="replay capacity in examples (positions x symmetries)")
    train_steps: int = Field(100, ge=0, le=10**7, description="Adam steps per round")
    batch_size: int = Field(128, ge=1, le=65536)
    lr: float = Field(1e-3, gt=0)
    lr_final: float | None = Field(None, gt=0, description="cosine-anneal the learning rate from lr (first round) "
                                   "to lr_final (last round); None = constant lr")
    weight_decay: float = Field(1e-4, ge=0)
    train_precision: TrainPrecision = train_precision_field()
    eval_every: int = Field(5, ge=1, description="evaluate every N rounds (and after the last)")
    checkpoint_every: int = Field(5, ge=1, description="checkpoint every N rounds (and after the last)")

    @model_validator(mode="after")
    def _playout_cap(self) -> AlphaZeroStageConfig:
        if self.fast_simulations and self.search == "gumbel":
            raise ValueError("fast_simulations (playout-cap randomisation) needs search = 'mcts': the Gumbel root's "
                             "sequential halving is planned for one simulation count")
        if self.fast_simulations >= self.simulations:
            raise ValueError(f"fast_simulations ({self.fast_simulations}) must be below simulations "
                             f"({self.simulations}), or 0 for off")
        return self


def round_lr(cfg: AlphaZeroStageConfig, round_: int) -> float:
    """The learning rate of round `round_` (0-based): constant `lr`, or with `lr_final` the cosine
    schedule of Loshchilov & Hutter 2017 ("SGDR") without restarts, over rounds,

        lr_t = lr_final + (lr - lr_final) (1 + cos(pi t / (R - 1))) / 2,

    so the first round trains at `lr` and the last at `lr_final`. Late rounds see a buffer of strong
    games that changes little from round to round; a small step there averages over them instead of
    chasing the newest ones. Computed from the round alone, so a resumed run gets the same rates."""
    if cfg.lr_final is None:
        return cfg.lr
    return cosine_between(cfg.lr, cfg.lr_final, round_, cfg.rounds)


def _search_config(cfg: AlphaZeroStageConfig):
    """The self-play search's config: GumbelConfig (Gumbel root) or MCTSConfig (PUCT + Dirichlet noise)."""
    if cfg.search == "gumbel":
        return GumbelConfig(num_simulations=cfg.simulations, max_considered=cfg.max_considered)
    return MCTSConfig(num_simulations=cfg.simulations, c_puct=cfg.c_puct, batch_size=cfg.search_batch,
                      dirichlet_alpha=cfg.dirichlet_alpha, dirichlet_fraction=cfg.dirichlet_fraction)


def _workers(ctx: StageContext, net):
    """The recipe's `[scale]` workers, each with its own copy of `net` (built from its config)."""
    scale = ctx.recipe.scale
    factory = partial(PolicyValueNet, net.config, net.observation_shape, net.num_actions)
    return make_workers(factory, backend=scale.backend, workers=scale.workers, address=scale.address,
                        threads=worker_threads(ctx.recipe.threads, scale.workers, scale.worker_threads))


def run_alphazero(ctx: StageContext, cfg: AlphaZeroStageConfig) -> dict[str, Any]:
    game = game_of(ctx)
    cls = game_class(game)
    loop = StageLoop(ctx, cfg.rounds, cfg.eval_every, cfg.checkpoint_every)
    net, optimizer, precision = start_training(ctx, cfg, loop)
    evaluate = game_eval(ctx, cfg, net, game)
    buffer = ReplayBuffer(cfg.buffer_size, cls.observation_shape, cls.num_actions)
    # One Generator for the stage's move sampling, search seeds and training batches; its state is
    # checkpointed, so a resumed run continues the very same stream.
    rng = np.random.default_rng(ctx.seed("generator"))
    stats = {}
    if loop.state is not None:
        buffer.load_state_dict(loop.state["buffer"])
        rng.bit_generator.state = loop.state["generator"]
        stats = loop.state["stats"]

    search_config = _search_config(cfg)
    with _workers(ctx, net) as workers:
        for round_ in loop.steps():
            began = time.time()
            # One draw from the stage's Generator per round; each worker's chunk of games gets a seed
            # derived from it and the chunk index, so the records do not depend on where chunks run.
            jobs = self_play_jobs(game, cfg.games_per_round, workers.workers, search_config, cfg.temperature_moves,
                                  seed=int(rng.integers(2**31)), fast_simulations=cfg.fast_simulations,
                                  full_fraction=cfg.full_fraction)
            records = [r for chunk in workers.map(play_job, jobs, weights=net.state_dict()) for r in chunk]
            examples = to_examples(records, augment=cfg.augment, q_weight=cfg.value_q_weight)
            buffer.add_game(examples)
            played = time.time()
            stats = {}
            lr = round_lr(cfg, round_)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if cfg.train_steps:
                stats = train_steps(net, optimizer, buffer, cfg.train_steps, cfg.batch_size, rng, precision)
            outcomes = np.array([r.returns[0] for r in records])
            positions = sum(len(r) for r in records)            # moves played (recorded or not)
            ctx.log(round_ + 1, **{k: round(v, 6) for k, v in stats.items() if k != "steps"},
                    first_player_win=round(float((outcomes > 0).mean()), 6),
                    draw=round(float((outcomes == 0).mean()), 6), game_length=round(positions / len(records), 3),
                    recorded=sum(len(r.players) for r in records), buffer=len(buffer), lr=lr,
                    positions_per_s=round(positions / max(played - began, 1e-9), 1),
                    selfplay_s=round(played - began, 3), train_s=round(time.time() - played, 3))
            info = f"loss {stats.get('loss', float('nan')):.3f}  draws {float((outcomes == 0).mean()):.0%}"
            loop.end_step(round_ + 1, net, info, evaluate,
                          lambda stats=stats: {"optimizer": optimizer.state_dict(), "stats": stats,
                                               "buffer": buffer.state_dict(), "generator": rng.bit_generator.state})
    return loop.finish(net, final_metrics(loop.evals, stats)) | {"train_precision": precision}
