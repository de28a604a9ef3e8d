"""Stage `game_eval`: every listed policy x opponent x decoder (raw net or MCTS@N), good/perfect-move
rates on solver-labelled connect-four positions (with random and UCT baselines), the tic-tac-toe
perfect-lines check, and Elo fitted on all its games (anchored at the random player = 0); with
`ladder = true` also a round-robin of the training snapshots, the final nets and reference players,
with bootstrap intervals (see `alphaloop/evals/elo_ladder.py`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from alphaloop.errors import UserError
from alphaloop.evals.elo_ladder import elo_records, net_player, reference_players, round_robin, snapshot_dirs
from alphaloop.evals.matches import evaluate_net, lost_lines_record, match_results
from alphaloop.evals.metrics import elo_from_results
from alphaloop.evals.positions import net_position_records, random_position_records, uct_position_records
from alphaloop.policies.nets import PolicyValueNet
from alphaloop.specs import RunSpec
from alphaloop.stages.context import StageContext
from alphaloop.stages.game_settings import GameEvalFields
from alphaloop.stages.game_training import eval_info, game_of, position_sets_for


class GameEvalStageConfig(GameEvalFields):
    kind: Literal["game_eval"]
    policies: list[str] = Field(default_factory=lambda: ["latest"], description="'latest' or stage names")
    eval_games: int = Field(40, ge=2, le=10**6, description="games per opponent and decoder (half as each colour)")
    perfect_lines: bool = Field(True, description="tic-tac-toe: count raw-net losses over all optimal lines")
    position_baselines: list[str] = Field(
        default_factory=list, description="on the position sets: 'random' (expected rates of a uniformly random "
        "move) and/or 'uct@N' (plain UCT, random roll-outs, N simulations: search without learning)")
    ladder: bool = Field(False, description="round-robin of the training snapshots (snapshots = true in the "
                         "training stages), the final nets and random + alphabeta@1..@ladder_depth; Elo with "
                         "bootstrap intervals")
    ladder_depth: int = Field(4, ge=1, le=64, description="reference players alphabeta@1 .. alphabeta@D")
    ladder_games: int = Field(20, ge=2, le=10**6, description="games per pair (half as each colour)")
    ladder_sims: int = Field(0, ge=0, le=10**6, description="0 = nets play raw (argmax); N = MCTS@N")
    ladder_opening: int = Field(2, ge=0, le=64, description="random plies opening every ladder game (distinct games)")
    elo_bootstrap: int = Field(200, ge=0, le=10**5,
                               description="bootstrap resamples for the 95% Elo intervals; 0 = none")

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        problems = super().check(run, trained)
        for name in self.policies:
            if name == "latest" and not trained:
                problems.append("policies: 'latest' is the newest trained stage's net, and no earlier stage trains one")
            elif name != "latest" and name not in trained:
                problems.append(f"policies: {name!r} is not a net of this recipe: expected 'latest' or an earlier "
                                f"training stage's name ({', '.join(trained) or 'none'})")
        return problems

    @field_validator("position_baselines")
    @classmethod
    def _baselines(cls, value: list[str]) -> list[str]:
        for name in value:
            kind, _, sims = name.partition("@")
            if not (name == "random" or (kind == "uct" and sims.isdigit() and int(sims) >= 1)):
                raise ValueError(f"position_baselines: expected 'random' or 'uct@N' (N >= 1), got {name!r}")
        return value


def _baseline_records(sets, baselines: list[str], seed: int) -> list[dict[str, Any]]:
    records = []
    for name in baselines:
        if name == "random":
            records += random_position_records(sets)
        else:
            records += uct_position_records(sets, [int(name.partition("@")[2])], seed)
    return records


def _ladder(ctx: StageContext, cfg: GameEvalStageConfig, game: str, names: list[str]):
    """The ladder's players: snapshots of the earlier stages, the final nets, the reference players."""
    earlier = [(s.name, f"{i}-{s.name}") for i, s in enumerate(ctx.recipe.stages[:ctx.index])]
    players = [net_player(f"{stage}@{step}", path, cfg.ladder_sims, stage, step)
               for stage, step, path in snapshot_dirs(ctx.run_dir, earlier)]
    players += [net_player(name, ctx.policy_dir(name), cfg.ladder_sims) for name in names]
    return players + reference_players(game, cfg.ladder_depth)


def run_game_eval(ctx: StageContext, cfg: GameEvalStageConfig) -> dict[str, Any]:
    """Every listed policy x opponent x decoder, position sets, perfect lines, and Elo over all its games."""
    game = game_of(ctx)
    names = [ctx.latest_policy_name() if p == "latest" else p for p in cfg.policies]
    names = [n for n in dict.fromkeys(names) if n is not None]
    if not names:
        raise UserError(f"stage {cfg.name!r}: no trained policy to evaluate (train one in an earlier stage)")
    sets = position_sets_for(ctx, cfg, game)
    task = ctx.new_progress_task(total=len(names))
    records, games = [], []
    for name in names:
        net = PolicyValueNet.load(ctx.policy_dir(name))
        seed = ctx.seed("eval", name) % (2**31)
        found, results = evaluate_net(name, net, game, cfg.opponents, cfg.alphabeta_depth, cfg.eval_games,
                                      cfg.eval_sims, seed=seed, opening=cfg.eval_opening)
        if game == "tictactoe" and cfg.perfect_lines:
            found.append(lost_lines_record(name, net))
        found += net_position_records(name, net, sets, cfg.position_sims, seed)
        for record in found:
            record["stage"], record["step"] = cfg.name, None
        records += found
        games += results
        ctx.progress.update(task, advance=1, info=f"{name}: {eval_info(found)}")
    for record in _baseline_records(sets, cfg.position_baselines, ctx.seed("baselines") % (2**31)):
        records.append(record | {"stage": cfg.name, "step": None})
    results = match_results(games)
    if not cfg.ladder:
        # Elo is anchored at the random player: without a game against it there is no scale.
        anchored = any("random" in (a, b) for a, b, _ in results)
        elo = elo_from_results(results, anchor="random") if anchored else {}
        return {"evals": records, "elo": {k: round(v, 1) + 0.0 for k, v in sorted(elo.items())}}  # no -0.0
    players = _ladder(ctx, cfg, game, names)
    ladder_task = ctx.new_progress_task(total=len(players) * (len(players) - 1) // 2)
    results += round_robin(players, game, cfg.ladder_games, cfg.ladder_opening, ctx.seed("ladder") % (2**31),
                           progress=lambda k, _: ctx.progress.update(ladder_task, completed=k, info="Elo ladder"))
    elo, found = elo_records(results, players, "random", cfg.elo_bootstrap, ctx.seed("bootstrap") % (2**31),
                             cfg.name)
    return {"evals": records + found, "elo": {k: round(v, 1) + 0.0 for k, v in sorted(elo.items())}}
