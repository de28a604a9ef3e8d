"""Stage `game_eval`: every listed policy x opponent x decoder (raw net or MCTS@N), the tic-tac-toe
perfect-lines check, and an Elo ladder fitted on all its games (anchored at the random player = 0).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from alphaloop.errors import UserError
from alphaloop.stages.game_common import (
    GameEvalFields,
    eval_info,
    evaluate_net,
    game_of,
    lost_lines_record,
    match_results,
)


class GameEvalStageConfig(GameEvalFields):
    kind: Literal["game_eval"]
    name: str | None = None
    policies: list[str] = Field(default_factory=lambda: ["latest"], description="'latest' or stage names")
    eval_games: int = Field(40, ge=2, description="games per opponent and decoder (half as each colour)")
    perfect_lines: bool = Field(True, description="tic-tac-toe: count raw-net losses over all optimal lines")


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
        ctx.progress.update(task, advance=1, info=f"{name}: {eval_info(found)}")
    elo = elo_from_results(match_results(games), anchor="random") if games else {}
    return {"evals": records, "elo": {k: round(v, 1) + 0.0 for k, v in sorted(elo.items())}}  # no -0.0
