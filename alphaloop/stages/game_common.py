"""Pieces the board-game stages share: evaluation settings, reference opponents, matches, the
tic-tac-toe perfect-lines check, the connect-four position sets, net snapshots for the Elo ladder,
and the resume / in-training-eval / finish plumbing.

The stages themselves live one per file: `alphazero.py` (self-play + search, Silver et al. 2017),
`game_imitate.py` (AlphaGo's supervised stage) and `game_eval.py`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from alphaloop.errors import UserError


def train_precision_field() -> Any:
    """The `train_precision` field of the training stages (`learners.alphazero.train_steps`'s
    `precision`): float32, or bfloat16 mixed precision (fp32 weights, optimizer, batch norm, loss)."""
    return Field("float32", description="bfloat16 = mixed-precision training (fp32 weights and optimizer; "
                                        "~2x faster a step on a CPU with AMX)")


class GameEvalFields(BaseModel):
    """Evaluation settings shared by the three stages."""

    model_config = ConfigDict(extra="forbid")

    opponents: list[str] | None = Field(
        None, description="random | perfect (tic-tac-toe) | alphabeta@D | uct@N (plain UCT, random roll-outs); "
        "default: random and the strongest")
    alphabeta_depth: int = Field(4, ge=1, description="depth of the default connect-four opponent")
    eval_games: int = Field(20, ge=2, description="games per opponent and decoder (half as each colour)")
    eval_opening: int = Field(0, ge=0, description="random plies opening every match game: deterministic players "
                              "would otherwise replay the same two games (keep 0 where a random opening can be "
                              "lost, e.g. against perfect tic-tac-toe)")
    eval_sims: list[int] = Field(default_factory=lambda: [0, 32],
                                 description="0 = raw net (argmax over legal moves); N = MCTS, N simulations")
    position_sets: list[str] = Field(
        default_factory=list, description="connect four: good/perfect-move rates on solver-labelled positions; "
        "kinds endgame | middle-soon | middle-late | opening (generated from the recipe seed, cached in "
        "RUN_DIR/positions) or Pons-format files")
    position_count: int = Field(200, ge=1, description="positions per generated set (at most this many of a file)")
    position_sims: list[int] = Field(default_factory=lambda: [0],
                                     description="on the position sets: 0 = raw net; N = MCTS, N simulations")
    snapshots: bool = Field(False, description="training stages: keep the net of every in-training eval "
                            "(stages/<i>-<name>/snapshots/step-N) for the game_eval Elo ladder")

    @field_validator("opponents")
    @classmethod
    def _opponents(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            make_opponent(name, None, 0)  # raises ValueError naming the allowed forms
        return value

    @field_validator("eval_sims", "position_sims")
    @classmethod
    def _sims(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if not value or any(s < 0 for s in value):
            raise ValueError(f"{info.field_name} must be a non-empty list of ints >= 0, got {value}")
        return value

    @field_validator("position_sets")
    @classmethod
    def _position_sets(cls, value: list[str]) -> list[str]:
        from pathlib import Path

        from alphaloop.games.positions import KINDS

        for spec in value:
            if spec not in KINDS and not Path(spec).is_file():
                raise ValueError(f"position_sets: {spec!r} is neither a kind ({', '.join(KINDS)}) nor an existing "
                                 "Pons-format file")
        return value



# ---------------------------------------------------------------- evaluation

def make_opponent(name: str, game: str | None, seed: int):
    """The reference player `name` (random | perfect | alphabeta@D | uct@N) for `game`; game None only
    checks the name. `uct@N` is search without learning: UCT (Kocsis & Szepesvari 2006) with one
    uniformly random roll-out per leaf and N simulations per move, the most visited move played."""
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
    if kind == "uct" and depth.isdigit() and int(depth) >= 1:
        from alphaloop.learners.alphazero import SearchPlayer
        from alphaloop.search import MCTS, RandomRolloutEvaluator, play_config

        config = play_config(int(depth), selection="uct")
        return None if game is None else SearchPlayer(MCTS(RandomRolloutEvaluator(seed), config, seed=seed))
    raise ValueError(f"opponent {name!r}: expected random, perfect (tic-tac-toe), alphabeta@D or uct@N (D, N >= 1)")


def default_opponents(game: str, depth: int) -> list[str]:
    """A floor and a ceiling: random, and perfect play (tic-tac-toe) or depth-`depth` alpha-beta."""
    return ["random", "perfect" if game == "tictactoe" else f"alphabeta@{depth}"]


Tally = tuple[str, str, int, int, int]  # (player, opponent, wins, draws, losses)


def evaluate_net(policy: str, net, game: str, opponents: list[str] | None, depth: int, games: int,
                 sims: list[int], seed: int, opening: int = 0) -> tuple[list[dict[str, Any]], list[Tally]]:
    """Matches of `net` (raw for sims 0, else MCTS@sims) against each opponent, half the games as
    each colour (`play_match` alternates). Returns the eval records and the (player, opponent, wins,
    draws, losses) tallies that Elo is fitted on. `win_low` / `win_high` bound the win rate with the
    Wilson 95% score interval (games counted as independent: with a few random opening plies some
    games between near-deterministic players repeat, so the real uncertainty is somewhat larger)."""
    from alphaloop.evals.metrics import wilson_interval
    from alphaloop.learners.alphazero import NetPlayer, play_match

    records, tallies = [], []
    for opponent_name in opponents or default_opponents(game, depth):
        for n_sims in sims:
            decoder = "raw" if n_sims == 0 else f"mcts@{n_sims}"
            try:
                opponent = make_opponent(opponent_name, game, seed)
            except ValueError as exc:
                raise UserError(f"opponents: {exc}") from None
            w, d, l = play_match(NetPlayer(net, sims=n_sims, seed=seed), opponent, game, games, seed=seed,
                                 random_opening=opening)
            n = w + d + l
            low, high = wilson_interval(w, n)
            metrics = {"win_rate": round(w / n, 6), "draw_rate": round(d / n, 6),
                       "loss_rate": round(l / n, 6), "score": round((w + 0.5 * d) / n, 6), "n": n,
                       "win_low": round(low, 6), "win_high": round(high, 6)}
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


def resume_training(ctx, cfg):
    """(net, optimizer, state or None): the newest checkpoint of this stage, or a fresh start."""
    import torch

    from alphaloop.policies.nets import PolicyValueNet

    # Prepare the held-out position sets first: a bad entry fails before any training, and the one-time
    # generation is not billed to the first evaluation.
    position_sets_for(ctx, cfg, game_of(ctx))
    resumed = ctx.load_checkpoint()
    net = PolicyValueNet.load(resumed[0]) if resumed else initial_net(ctx)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = resumed[1] if resumed else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    return net, optimizer, state


def position_sets_for(ctx, cfg, game: str) -> list:
    """The stage's `position_sets`, generated once per run from the recipe seed (the same sets for every
    stage, so their rates compare across stages) and cached under RUN_DIR/positions."""
    from alphaloop.evals.positions import position_set
    from alphaloop.runner import derive_seed

    if not cfg.position_sets:
        return []
    if game != "connect4":
        raise UserError(f"stage {ctx.stage.name!r}: position_sets are solver-labelled connect-four positions; "
                        f"this recipe plays {game!r} (remove position_sets)")
    seed = derive_seed(ctx.recipe.seed, "positions") % (2**31)
    try:
        return [position_set(spec, cfg.position_count, seed, ctx.run_dir / "positions") for spec in cfg.position_sets]
    except ImportError as exc:
        raise UserError(f"position_sets: {exc}") from None
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"stage {ctx.stage.name!r}: position_sets: {exc}") from None


def selfplay_games(ctx, step: int) -> int:
    """Self-play games this run has played by `step` of the current stage: the x axis on which
    imitation-first and from-zero runs are compared (an imitation stage plays none)."""
    total = 0
    for index, stage in enumerate(ctx.recipe.stages[:ctx.index + 1]):
        if stage.kind == "alphazero":
            total += stage.games_per_round * (step if index == ctx.index else stage.rounds)
    return total


def save_snapshot(ctx, net, step: int) -> None:
    """Keep the net as it is at `step` (atomically) for the Elo ladder: stages/<i>-<name>/snapshots/step-N."""
    from alphaloop import checkpoint as ckpt

    ckpt.write_atomic_dir(ctx.stage_dir / "snapshots" / f"step-{step:07d}", net.save,
                          meta={"step": step, "selfplay_games": selfplay_games(ctx, step)})


def in_training_eval(ctx, cfg, net, game: str, step: int) -> list[dict[str, Any]]:
    """Matches, good/perfect-move rates on the position sets (and for tic-tac-toe the perfect-lines
    count), logged and returned as eval records; with `snapshots` the net is kept for the ladder."""
    from alphaloop.evals.positions import net_position_records

    seed = ctx.seed("eval", step) % (2**31)
    records, _ = evaluate_net(ctx.stage.name, net, game, cfg.opponents, cfg.alphabeta_depth, cfg.eval_games,
                              cfg.eval_sims, seed=seed, opening=cfg.eval_opening)
    if game == "tictactoe":
        records.append(lost_lines_record(ctx.stage.name, net))
    records += net_position_records(ctx.stage.name, net, position_sets_for(ctx, cfg, game), cfg.position_sims, seed)
    games = selfplay_games(ctx, step)
    for record in records:
        record["stage"], record["step"] = ctx.stage.name, step
        ctx.log(step, kind="eval", split=record["split"], decoder=record["decoder"], selfplay_games=games,
                **record["metrics"])
    if cfg.snapshots:
        save_snapshot(ctx, net, step)
    return records


def close_step(ctx, cfg, net, game: str, done: int, total: int, task: int, info: str, evals: list,
               trainer_state) -> None:
    """The end of a training step or round, shared by the game stages: the in-training eval (every
    `eval_every` and at the end, appended to `evals`), the progress line, and the checkpoint (every
    `checkpoint_every` and at the end) holding `evals` plus `trainer_state()` (called only then)."""
    if done % cfg.eval_every == 0 or done == total:
        fresh = in_training_eval(ctx, cfg, net, game, done)
        evals.extend(fresh)
        info += "  " + eval_info(fresh)
    ctx.progress.update(task, completed=done, info=info)
    if done % cfg.checkpoint_every == 0 or done == total:
        ctx.save_checkpoint(done, net, {"evals": evals, **trainer_state()})


def eval_info(records: list[dict[str, Any]]) -> str:
    parts = []
    for r in records:
        if r["split"] == "perfect-lines":
            m = r["metrics"]
            parts.append(f"lost lines {m['lost_lines_as_first']}+{m['lost_lines_as_second']}/{m['lines']}")
        elif r["split"].startswith("positions-"):
            if r["decoder"] == "raw":
                parts.append(f"{r['split'][10:]} good {r['metrics']['good_move_rate']:.0%}")
        elif r["decoder"] == "raw" and r["split"] != "vs-random":
            parts.append(f"{r['split']} raw score {r['metrics']['score']:.2f}")
    return "  ".join(parts)


def final_metrics(evals: list[dict[str, Any]], stats: dict[str, float]) -> dict[str, Any]:
    final = {k: round(v, 6) for k, v in stats.items() if k in ("loss", "policy_loss", "value_loss")}
    last_step = evals[-1]["step"] if evals else None
    for r in evals:
        if r["step"] != last_step:
            continue
        if r["split"] == "perfect-lines":
            final.update(r["metrics"])
        elif r["split"].startswith("positions-"):
            final[f"{r['split']}/{r['decoder']}/good_move_rate"] = r["metrics"]["good_move_rate"]
        else:
            final[f"{r['split']}/{r['decoder']}/score"] = r["metrics"]["score"]
    return final


def finish(ctx, net, rounds: int, evals: list, stats: dict[str, float]) -> dict[str, Any]:
    return {"steps": rounds, "final": final_metrics(evals, stats), "evals": evals,
            "policy_dir": ctx.save_final_policy(net.save)}
