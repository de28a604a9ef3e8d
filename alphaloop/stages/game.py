"""Board-game stages: `game_imitate` (the AlphaGo way in), `alphazero` (self-play + search), `game_eval`.

`alphazero` repeats the loop of Silver et al. 2017 ("Mastering the game of Go without human
knowledge"), at toy scale and fully in lock-step:

    self-play:  G games at once, MCTS (PUCT, or the Gumbel root of Danihelka et al. 2022) over the
                NetEvaluator -> positions with visit-count targets pi and outcomes z
    replay:     the positions and their board symmetries go into a FIFO buffer
    learn:      `train_steps` Adam steps on  l = (z - v)^2 - pi^T log p  (+ L2 via weight decay)
    evaluate:   matches vs a random and a strong player, both colours, raw net and net + search

`game_imitate` is AlphaGo's supervised stage: an expert (depth-limited alpha-beta, optionally
noisy) plays games and the net learns the expert's move (cross-entropy) and the outcome (MSE), the
same loss with one-hot targets.

Resume: a checkpoint holds the net, the optimizer, the replay buffer, the round and every RNG
(including the stage's numpy Generator), so a run killed with `kill -9` and resumed ends with the
same summary as an uninterrupted one.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alphaloop.errors import UserError


class _GameEvalFields(BaseModel):
    """Evaluation settings shared by the three stages."""

    model_config = ConfigDict(extra="forbid")

    opponents: list[str] | None = Field(
        None, description="random | perfect (tic-tac-toe) | alphabeta@D; default: random and the strongest")
    alphabeta_depth: int = Field(4, ge=1, description="depth of the default connect-four opponent")
    eval_games: int = Field(20, ge=2, description="games per opponent and decoder (half as each colour)")
    eval_sims: list[int] = Field(default_factory=lambda: [0, 32],
                                 description="0 = raw net (argmax over legal moves); N = MCTS, N simulations")

    @field_validator("opponents")
    @classmethod
    def _opponents(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            make_opponent(name, None, 0)  # raises ValueError naming the allowed forms
        return value

    @field_validator("eval_sims")
    @classmethod
    def _sims(cls, value: list[int]) -> list[int]:
        if not value or any(s < 0 for s in value):
            raise ValueError(f"eval_sims must be a non-empty list of ints >= 0, got {value}")
        return value


class AlphaZeroStageConfig(_GameEvalFields):
    kind: Literal["alphazero"]
    name: str | None = None
    rounds: int = Field(25, ge=1, description="self-play -> train -> (eval) rounds")
    games_per_round: int = Field(64, ge=1, description="self-play games per round, played in lock-step")
    search: Literal["mcts", "gumbel"] = "mcts"
    simulations: int = Field(32, ge=1, description="search simulations per self-play move")
    c_puct: float = Field(1.25, gt=0)
    dirichlet_alpha: float = Field(1.0, gt=0, description="root noise Dir(alpha); ~10 / legal moves")
    dirichlet_fraction: float = Field(0.25, ge=0, le=1)
    max_considered: int = Field(16, ge=1, description="Gumbel: root actions considered")
    temperature_moves: int = Field(4, ge=0, description="moves sampled from N^(1/tau=1) before argmax play")
    search_batch: int = Field(8, ge=1, description="leaves per tree per evaluator call")
    augment: bool = Field(True, description="add the board symmetries of every position")
    buffer_size: int = Field(20000, ge=1, description="replay capacity in examples (positions x symmetries)")
    train_steps: int = Field(100, ge=0, description="Adam steps per round")
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    eval_every: int = Field(5, ge=1, description="evaluate every N rounds (and after the last)")
    checkpoint_every: int = Field(5, ge=1, description="checkpoint every N rounds (and after the last)")


class GameImitateStageConfig(_GameEvalFields):
    kind: Literal["game_imitate"]
    name: str | None = None
    expert: Literal["alphabeta", "perfect"] = Field("alphabeta", description="perfect: tic-tac-toe only")
    depth: int = Field(4, ge=1, description="expert alpha-beta depth (plies)")
    noise: float = Field(0.0, ge=0, le=1, description="chance the expert plays (and teaches) a random move")
    epsilon: float = Field(0.1, ge=0, le=1, description="probability a random move is played, target kept")
    games: int = Field(300, ge=1, description="expert games generated (once, from the seed)")
    augment: bool = True
    steps: int = Field(500, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    eval_every: int = Field(250, ge=1)
    checkpoint_every: int = Field(250, ge=1)


class GameEvalStageConfig(_GameEvalFields):
    kind: Literal["game_eval"]
    name: str | None = None
    policies: list[str] = Field(default_factory=lambda: ["latest"], description="'latest' or stage names")
    eval_games: int = Field(40, ge=2, description="games per opponent and decoder (half as each colour)")
    perfect_lines: bool = Field(True, description="tic-tac-toe: count raw-net losses over all optimal lines")


# ---------------------------------------------------------------- evaluation

def make_opponent(name: str, game: str | None, seed: int):
    """The reference player `name` (random | perfect | alphabeta@D) for `game`; game None only checks it."""
    from alphaloop.games.alphabeta import AlphaBetaPlayer
    from alphaloop.games.players import PerfectTicTacToe, RandomPlayer

    kind, _, depth = name.partition("@")
    if name == "random":
        return None if game is None else RandomPlayer(seed)
    if name == "perfect":
        if game not in (None, "tictactoe"):
            raise ValueError(f"opponent 'perfect' exists for tictactoe only, not {game!r}; use alphabeta@D")
        return None if game is None else PerfectTicTacToe(seed)
    if kind == "alphabeta" and depth.isdigit() and int(depth) >= 1:
        return None if game is None else AlphaBetaPlayer(int(depth), seed=seed)
    raise ValueError(f"opponent {name!r}: expected random, perfect (tic-tac-toe) or alphabeta@D (D >= 1)")


def default_opponents(game: str, depth: int) -> list[str]:
    """A floor and a ceiling: random, and perfect play (tic-tac-toe) or depth-`depth` alpha-beta."""
    return ["random", "perfect" if game == "tictactoe" else f"alphabeta@{depth}"]


Tally = tuple[str, str, int, int, int]  # (player, opponent, wins, draws, losses)


def evaluate_net(policy: str, net, game: str, opponents: list[str] | None, depth: int, games: int,
                 sims: list[int], seed: int) -> tuple[list[dict[str, Any]], list[Tally]]:
    """Matches of `net` (raw for sims 0, else MCTS@sims) against each opponent, half the games as
    each colour (`play_match` alternates). Returns the eval records and the (player, opponent, wins,
    draws, losses) tallies that Elo is fitted on."""
    from alphaloop.learners.alphazero import NetPlayer, play_match

    records, tallies = [], []
    for opponent_name in opponents or default_opponents(game, depth):
        for n_sims in sims:
            decoder = "raw" if n_sims == 0 else f"mcts@{n_sims}"
            try:
                opponent = make_opponent(opponent_name, game, seed)
            except ValueError as exc:
                raise UserError(f"opponents: {exc}") from None
            w, d, l = play_match(NetPlayer(net, sims=n_sims, seed=seed), opponent, game, games, seed=seed)
            n = w + d + l
            metrics = {"win_rate": round(w / n, 6), "draw_rate": round(d / n, 6),
                       "loss_rate": round(l / n, 6), "score": round((w + 0.5 * d) / n, 6), "n": n}
            records.append({"policy": policy, "split": f"vs-{opponent_name}", "decoder": decoder,
                            "metrics": metrics})
            tallies.append((f"{policy}:{decoder}", opponent_name, w, d, l))
    return records, tallies


def match_results(tallies: list[Tally]) -> list[tuple[str, str, float]]:
    """One (a, b, score of a) per game, as `elo_from_results` wants: win 1, draw 0.5, loss 0."""
    out = []
    for a, b, w, d, l in tallies:
        out += [(a, b, 1.0)] * w + [(a, b, 0.5)] * d + [(a, b, 0.0)] * l
    return out


def perfect_lines(net) -> dict[str, int]:
    """Lines of tic-tac-toe where the raw net (argmax over legal moves) plays one side and the
    opponent may play ANY value-preserving move (every move whose minimax value equals the best):
    the net "never loses to perfect play" iff no such line ends in its loss. Counts terminal lines
    and lost ones, with the net as X (first) and as O (second)."""
    from alphaloop.games.players import PerfectTicTacToe
    from alphaloop.games.registry import new_game
    from alphaloop.learners.alphazero import NetPlayer

    perfect, player = PerfectTicTacToe(), NetPlayer(net, sims=0)
    choice: dict = {}

    def walk(state, seat: int) -> tuple[int, int]:
        if state.is_terminal():
            return 1, int(state.returns()[seat] < 0)
        if state.current_player() == seat:
            key = state.key()
            if key not in choice:
                choice[key] = player.choose(state)
            moves = [choice[key]]
        else:
            values = perfect.move_values(state)
            best = max(v for v in values if v is not None)
            moves = [a for a, v in enumerate(values) if v == best]
        lines = lost = 0
        for a in moves:
            child = state.clone()
            child.apply_action(a)
            n, k = walk(child, seat)
            lines, lost = lines + n, lost + k
        return lines, lost

    first, second = walk(new_game("tictactoe"), 0), walk(new_game("tictactoe"), 1)
    return {"lost_lines_as_first": first[1], "lost_lines_as_second": second[1], "lines": first[0] + second[0]}


def lost_lines_record(policy: str, net) -> dict[str, Any]:
    return {"policy": policy, "split": "perfect-lines", "decoder": "raw", "metrics": perfect_lines(net)}


# ---------------------------------------------------------------- shared pieces

def game_of(ctx) -> str:
    """The board game a recipe plays: `env.name` must be a registered game and `policy.kind` 'net'."""
    from alphaloop.games.registry import game_names

    name = ctx.recipe.env.name
    if name not in game_names():
        raise UserError(f"stage {ctx.stage.name!r} ({ctx.stage.kind}) plays a board game: env.name must be "
                        f"one of {game_names()}, got {name!r}")
    if ctx.recipe.policy.kind != "net":
        raise UserError(f"stage {ctx.stage.name!r} ({ctx.stage.kind}) trains a policy-value net: set "
                        f"policy.kind = 'net' (and optionally [policy.net]), got {ctx.recipe.policy.kind!r}")
    return name


def initial_net(ctx):
    """The previous trained stage's net, else a fresh one seeded from the recipe seed only."""
    import torch

    from alphaloop.games.registry import game_class
    from alphaloop.policies.nets import NetConfig, PolicyValueNet, build_net
    from alphaloop.runner import derive_seed

    game = game_of(ctx)
    previous = ctx.latest_policy_name()
    if previous is not None:
        return PolicyValueNet.load(ctx.policy_dir(previous))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(ctx.recipe.seed, "init"))
        return build_net(ctx.recipe.policy.net or NetConfig(), game_class(game)).eval()


def _resume(ctx, cfg):
    """(net, optimizer, state or None): the newest checkpoint of this stage, or a fresh start."""
    import torch

    from alphaloop.policies.nets import PolicyValueNet

    resumed = ctx.load_checkpoint()
    net = PolicyValueNet.load(resumed[0]) if resumed else initial_net(ctx)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = resumed[1] if resumed else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    return net, optimizer, state


def _in_training_eval(ctx, cfg, net, game: str, step: int) -> list[dict[str, Any]]:
    """Matches (and for tic-tac-toe the perfect-lines count), logged and returned as eval records."""
    records, _ = evaluate_net(ctx.stage.name, net, game, cfg.opponents, cfg.alphabeta_depth, cfg.eval_games,
                              cfg.eval_sims, seed=ctx.seed("eval", step) % (2**31))
    if game == "tictactoe":
        records.append(lost_lines_record(ctx.stage.name, net))
    for record in records:
        record["stage"], record["step"] = ctx.stage.name, step
        ctx.log(step, kind="eval", split=record["split"], decoder=record["decoder"], **record["metrics"])
    return records


def _eval_info(records: list[dict[str, Any]]) -> str:
    parts = []
    for r in records:
        if r["split"] == "perfect-lines":
            m = r["metrics"]
            parts.append(f"lost lines {m['lost_lines_as_first']}+{m['lost_lines_as_second']}/{m['lines']}")
        elif r["decoder"] == "raw" and r["split"] != "vs-random":
            parts.append(f"{r['split']} raw score {r['metrics']['score']:.2f}")
    return "  ".join(parts)


def _final(evals: list[dict[str, Any]], stats: dict[str, float]) -> dict[str, Any]:
    final = {k: round(v, 6) for k, v in stats.items() if k in ("loss", "policy_loss", "value_loss")}
    last_step = evals[-1]["step"] if evals else None
    for r in evals:
        if r["step"] != last_step:
            continue
        if r["split"] == "perfect-lines":
            final.update(r["metrics"])
        else:
            final[f"{r['split']}/{r['decoder']}/score"] = r["metrics"]["score"]
    return final


def _finish(ctx, net, rounds: int, evals: list, stats: dict[str, float]) -> dict[str, Any]:
    return {"steps": rounds, "final": _final(evals, stats), "evals": evals,
            "policy_dir": ctx.save_final_policy(net.save)}


# ---------------------------------------------------------------- alphazero

def _self_play_search(cfg: AlphaZeroStageConfig, net, seed: int):
    from alphaloop.search import MCTS, GumbelConfig, GumbelMCTS, MCTSConfig
    from alphaloop.search.net_evaluator import NetEvaluator

    evaluator = NetEvaluator(net)
    if cfg.search == "gumbel":
        config = GumbelConfig(num_simulations=cfg.simulations, max_considered=cfg.max_considered)
        return GumbelMCTS(evaluator, config, seed=seed)
    config = MCTSConfig(num_simulations=cfg.simulations, c_puct=cfg.c_puct, batch_size=cfg.search_batch,
                        dirichlet_alpha=cfg.dirichlet_alpha, dirichlet_fraction=cfg.dirichlet_fraction)
    return MCTS(evaluator, config, seed=seed)


def run_alphazero(ctx, cfg: AlphaZeroStageConfig) -> dict[str, Any]:
    from alphaloop.games.registry import game_class
    from alphaloop.games.replay import ReplayBuffer
    from alphaloop.games.selfplay import play_games, to_examples
    from alphaloop.learners.alphazero import train_steps

    game = game_of(ctx)
    cls = game_class(game)
    net, optimizer, state = _resume(ctx, cfg)
    buffer = ReplayBuffer(cfg.buffer_size, cls.observation_shape, cls.num_actions)
    # One Generator for the stage's move sampling, search seeds and training batches; its state is
    # checkpointed, so a resumed run continues the very same stream.
    rng = np.random.default_rng(ctx.seed("generator"))
    start, evals, stats = 0, [], {}
    if state is not None:
        buffer.load_state_dict(state["buffer"])
        rng.bit_generator.state = state["generator"]
        start, evals, stats = state["step"], state["evals"], state["stats"]

    task = ctx.new_progress_task(cfg.rounds, completed=start)
    for round_ in range(start, cfg.rounds):
        began = time.time()
        search = _self_play_search(cfg, net, seed=int(rng.integers(2**31)))
        records = play_games(game, search, cfg.games_per_round, cfg.temperature_moves, rng)
        examples = to_examples(records, augment=cfg.augment)
        buffer.add_game(examples)
        played = time.time()
        stats = {}
        if cfg.train_steps:
            stats = train_steps(net, optimizer, buffer, cfg.train_steps, cfg.batch_size, rng)
        done = round_ + 1
        outcomes = np.array([r.returns[0] for r in records])
        positions = sum(len(r) for r in records)
        ctx.log(done, **{k: round(v, 6) for k, v in stats.items() if k != "steps"},
                first_player_win=round(float((outcomes > 0).mean()), 6),
                draw=round(float((outcomes == 0).mean()), 6), game_length=round(positions / len(records), 3),
                buffer=len(buffer), positions_per_s=round(positions / max(played - began, 1e-9), 1),
                selfplay_s=round(played - began, 3), train_s=round(time.time() - played, 3))
        info = f"loss {stats.get('loss', float('nan')):.3f}  draws {float((outcomes == 0).mean()):.0%}"
        if done % cfg.eval_every == 0 or done == cfg.rounds:
            fresh = _in_training_eval(ctx, cfg, net, game, done)
            evals.extend(fresh)
            info += "  " + _eval_info(fresh)
        ctx.progress.update(task, completed=done, info=info)
        if done % cfg.checkpoint_every == 0 or done == cfg.rounds:
            ctx.save_checkpoint(done, net, {"optimizer": optimizer.state_dict(), "evals": evals,
                                            "stats": stats, "buffer": buffer.state_dict(),
                                            "generator": rng.bit_generator.state})
    return _finish(ctx, net, cfg.rounds, evals, stats)


# ---------------------------------------------------------------- game_imitate

def expert_buffer(game: str, cfg: GameImitateStageConfig, seed: int):
    """The expert's games as a replay buffer holding all of them (regenerated identically on resume)."""
    from alphaloop.games.alphabeta import AlphaBetaPlayer
    from alphaloop.games.players import PerfectTicTacToe
    from alphaloop.games.registry import game_class
    from alphaloop.games.replay import ReplayBuffer
    from alphaloop.games.selfplay import imitation_games, to_examples

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


def run_game_imitate(ctx, cfg: GameImitateStageConfig) -> dict[str, Any]:
    from alphaloop.learners.alphazero import train_steps

    game = game_of(ctx)
    buffer = expert_buffer(game, cfg, ctx.seed("expert") % (2**31))
    net, optimizer, state = _resume(ctx, cfg)
    rng = np.random.default_rng(ctx.seed("generator"))
    start, evals, stats = 0, [], {}
    if state is not None:
        rng.bit_generator.state = state["generator"]
        start, evals, stats = state["step"], state["evals"], state["stats"]
    task = ctx.new_progress_task(cfg.steps, completed=start)
    for step in range(start, cfg.steps):
        stats = train_steps(net, optimizer, buffer, 1, cfg.batch_size, rng)
        done = step + 1
        ctx.log(done, **{k: round(v, 6) for k, v in stats.items() if k != "steps"})
        info = f"loss {stats['loss']:.3f}"
        if done % cfg.eval_every == 0 or done == cfg.steps:
            fresh = _in_training_eval(ctx, cfg, net, game, done)
            evals.extend(fresh)
            info += "  " + _eval_info(fresh)
        ctx.progress.update(task, completed=done, info=info)
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            ctx.save_checkpoint(done, net, {"optimizer": optimizer.state_dict(), "evals": evals,
                                            "stats": stats, "generator": rng.bit_generator.state})
    return _finish(ctx, net, cfg.steps, evals, stats)


# ---------------------------------------------------------------- game_eval

def run_game_eval(ctx, cfg: GameEvalStageConfig) -> dict[str, Any]:
    """Every listed policy x opponent x decoder, the perfect-lines check, and Elo over all its games."""
    from alphaloop.evals.metrics import elo_from_results
    from alphaloop.policies.nets import PolicyValueNet

    game = game_of(ctx)
    names = [ctx.latest_policy_name() if p == "latest" else p for p in cfg.policies]
    names = [n for n in dict.fromkeys(names) if n is not None]
    if not names:
        raise UserError(f"stage {cfg.name!r}: no trained policy to evaluate (train one in an earlier stage)")
    task = ctx.new_progress_task(total=len(names))
    records, games = [], []
    for name in names:
        net = PolicyValueNet.load(ctx.policy_dir(name))
        found, results = evaluate_net(name, net, game, cfg.opponents, cfg.alphabeta_depth, cfg.eval_games,
                                      cfg.eval_sims, seed=ctx.seed("eval", name) % (2**31))
        if game == "tictactoe" and cfg.perfect_lines:
            found.append(lost_lines_record(name, net))
        for record in found:
            record["stage"], record["step"] = cfg.name, None
        records += found
        games += results
        ctx.progress.update(task, advance=1, info=f"{name}: {_eval_info(found)}")
    elo = elo_from_results(match_results(games), anchor="random") if games else {}
    return {"evals": records, "elo": {k: round(v, 1) + 0.0 for k, v in sorted(elo.items())}}  # no -0.0
