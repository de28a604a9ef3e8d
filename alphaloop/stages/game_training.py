"""What the board-game training stages (`game_imitate`, `alphazero`) share around their own step:
checking that the recipe plays a game with a net, starting or resuming the net and its optimizer,
the in-training evaluation (matches, position sets, perfect lines, snapshots for the Elo ladder)
and the final metrics. The loop itself is `stages.loop.StageLoop`, as for every training stage.
"""

from __future__ import annotations

from typing import Any

import torch

from alphaloop import checkpoint as ckpt
from alphaloop.errors import UserError
from alphaloop.evals.matches import evaluate_net, lost_lines_record
from alphaloop.evals.positions import net_position_records, position_set
from alphaloop.games.registry import game_names
from alphaloop.policies.nets import PolicyValueNet, training_precision
from alphaloop.seeding import derive_seed
from alphaloop.stages.context import StageContext
from alphaloop.stages.game_settings import GameEvalFields
from alphaloop.stages.loop import Evaluate, StageLoop


def game_of(ctx: StageContext) -> str:
    """The board game a recipe plays: `env.name` must be a registered game and `policy.kind` 'net'."""
    name = ctx.recipe.env.name
    if name not in game_names():
        raise UserError(f"stage {ctx.stage.name!r} ({ctx.stage.kind}) plays a board game: env.name must be "
                        f"one of {game_names()}, got {name!r}")
    if ctx.recipe.policy.kind != "net":
        raise UserError(f"stage {ctx.stage.name!r} ({ctx.stage.kind}) trains a policy-value net: set "
                        f"policy.kind = 'net' (and optionally [policy.net]), got {ctx.recipe.policy.kind!r}")
    return name


def start_training(ctx: StageContext, cfg, loop: StageLoop) -> tuple[PolicyValueNet, torch.optim.Adam, str]:
    """The net and its Adam optimizer: from this stage's newest checkpoint, or the previous stage's
    net (a fresh one for the first stage); and the training precision `cfg.train_precision` means
    here. `cfg` has `lr`, `weight_decay` and `train_precision`."""
    # Prepare the held-out position sets first: a bad entry fails before any training, and the one-time
    # generation is not billed to the first evaluation.
    position_sets_for(ctx, cfg, game_of(ctx))
    resumed = loop.resume()
    net = PolicyValueNet.load(resumed) if resumed else ctx.initial_policy()
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if loop.state is not None:
        optimizer.load_state_dict(loop.state["optimizer"])
    return net, optimizer, training_precision(cfg.train_precision, next(net.parameters()).device)


def position_sets_for(ctx: StageContext, cfg: GameEvalFields, game: str) -> list:
    """The stage's `position_sets`, generated once per run from the recipe seed (the same sets for every
    stage, so their rates compare across stages) and cached under RUN_DIR/positions."""
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


def selfplay_games(ctx: StageContext, step: int) -> int:
    """Self-play games this run has played by `step` of the current stage: the x axis on which
    imitation-first and from-zero runs are compared (an imitation stage plays none)."""
    total = 0
    for index, stage in enumerate(ctx.recipe.stages[:ctx.index + 1]):
        if stage.kind == "alphazero":
            total += stage.games_per_round * (step if index == ctx.index else stage.rounds)
    return total


def save_snapshot(ctx: StageContext, net, step: int) -> None:
    """Keep the net as it is at `step` (atomically) for the Elo ladder: stages/<i>-<name>/snapshots/step-N."""
    ckpt.write_atomic_dir(ctx.stage_dir / "snapshots" / f"step-{step:07d}", net.save,
                          meta={"step": step, "selfplay_games": selfplay_games(ctx, step)})


def game_eval(ctx: StageContext, cfg: GameEvalFields, net, game: str) -> Evaluate:
    """`evaluate(step)` for the stage loop: matches, good/perfect-move rates on the position sets (and
    for tic-tac-toe the perfect-lines count), logged and returned as eval records; with `snapshots`
    the net is kept for the ladder."""

    def evaluate_at(step: int) -> tuple[list[dict[str, Any]], str]:
        seed = ctx.seed("eval", step) % (2**31)
        records, _ = evaluate_net(ctx.stage.name, net, game, cfg.opponents, cfg.alphabeta_depth, cfg.eval_games,
                                  cfg.eval_sims, seed=seed, opening=cfg.eval_opening)
        if game == "tictactoe":
            records.append(lost_lines_record(ctx.stage.name, net))
        records += net_position_records(ctx.stage.name, net, position_sets_for(ctx, cfg, game), cfg.position_sims,
                                        seed)
        games = selfplay_games(ctx, step)
        for record in records:
            record["stage"], record["step"] = ctx.stage.name, step
            ctx.log(step, kind="eval", split=record["split"], decoder=record["decoder"], selfplay_games=games,
                    **record["metrics"])
        if cfg.snapshots:
            save_snapshot(ctx, net, step)
        return records, eval_info(records)

    return evaluate_at


def eval_info(records: list[dict[str, Any]]) -> str:
    """The progress line's summary of game eval records."""
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
    """The stage's `final`: the last training losses and the last in-training eval's headline rates."""
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


__all__ = ["game_of", "start_training", "position_sets_for", "selfplay_games", "game_eval",
           "eval_info", "final_metrics"]
