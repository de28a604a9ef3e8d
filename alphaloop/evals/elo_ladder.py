"""Elo ladder: how a net's strength grew during training, on one scale with fixed reference players.

Players are the nets kept during training (`snapshots = true` writes stages/<i>-<name>/snapshots/
step-N at every in-training eval), the run's final nets, and reference players (random and
alpha-beta at depths 1..D, plus perfect play for tic-tac-toe). Every pair plays the same number
of games, half as each colour; the first `opening` plies of game g are uniformly random moves
drawn from seed + g, the same openings for every pair, so deterministic players (a raw net's
argmax) do not replay one game. Ratings are the Bradley-Terry maximum a posteriori fit on all
games at once (`metrics.elo_from_results`, Elo 1978), anchored at random = 0.

95% intervals: the percentile bootstrap (Efron 1979). Resample the games with replacement B times,
refit, and take each player's 2.5% and 97.5% rating quantiles. It treats games as independent,
which they are given the players (every game has its own opening and seeds).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alphaloop import checkpoint as ckpt
from alphaloop.errors import CorruptCheckpointError
from alphaloop.evals.metrics import elo_from_results
from alphaloop.evals.opponents import make_opponent
from alphaloop.games.match import play_match
from alphaloop.policies.nets import PolicyValueNet
from alphaloop.search.players import NetPlayer

Result = tuple[str, str, float]  # (player a, player b, a's score: 1 win, 0.5 draw, 0 loss)


@dataclass(frozen=True)
class LadderPlayer:
    """A named player and how to build it (`make(seed)`); `stage`/`step` locate a training snapshot."""

    name: str
    make: Callable[[int], Any]
    stage: str | None = None
    step: int | None = None


def reference_players(game: str, depth: int) -> list[LadderPlayer]:
    """random, alphabeta@1..@depth, and perfect play for tic-tac-toe: a fixed scale across runs."""
    names = ["random"] + [f"alphabeta@{d}" for d in range(1, depth + 1)]
    names += ["perfect"] if game == "tictactoe" else []
    return [LadderPlayer(n, lambda seed, n=n: make_opponent(n, game, seed)) for n in names]


def net_player(name: str, net_dir: Path, sims: int, stage: str | None = None, step: int | None = None) -> LadderPlayer:
    """A net loaded once from `net_dir`, playing raw (sims 0) or with MCTS@sims; named `name:decoder`."""
    net = PolicyValueNet.load(net_dir)
    decoder = "raw" if sims == 0 else f"mcts@{sims}"
    return LadderPlayer(f"{name}:{decoder}", lambda seed: NetPlayer(net, sims=sims, seed=seed), stage, step)


def snapshot_dirs(run_dir: Path, stage_dirs: Sequence[tuple[str, str]]) -> list[tuple[str, int, Path]]:
    """(stage name, step, net dir) of every verified snapshot under the given (stage name, stage dir
    name) pairs, oldest first; corrupt or half-written ones (no valid manifest) are skipped."""
    found = []
    for name, dirname in stage_dirs:
        for path in reversed(ckpt.step_dirs(Path(run_dir) / "stages" / dirname / "snapshots")):
            try:
                ckpt.verify_dir(path)
            except CorruptCheckpointError:
                continue
            found.append((name, int(path.name.split("-")[1]), path))
    return found


def round_robin(players: Sequence[LadderPlayer], game: str, games: int, opening: int, seed: int,
                progress: Callable[[int, int], None] | None = None) -> list[Result]:
    """Every pair plays `games` games (`play_match`: colours alternate, `opening` random plies).
    Player seeds differ per pair so their tie-breaking is independent. Returns one result per game."""
    if games < 1:
        raise ValueError(f"games per pair must be >= 1, got {games}")
    if len({p.name for p in players}) != len(players):
        raise ValueError(f"ladder player names must be unique, got {[p.name for p in players]}")
    pairs = list(itertools.combinations(range(len(players)), 2))
    results: list[Result] = []
    for k, (i, j) in enumerate(pairs):
        a, b = players[i], players[j]
        w, d, l = play_match(a.make(seed + 2 * k + 1), b.make(seed + 2 * k + 2), game, games, seed=seed,
                             random_opening=opening)
        results += [(a.name, b.name, 1.0)] * w + [(a.name, b.name, 0.5)] * d + [(a.name, b.name, 0.0)] * l
        if progress is not None:
            progress(k + 1, len(pairs))
    return results


def bootstrap_intervals(results: Sequence[Result], anchor: str, resamples: int, seed: int,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap interval of each player's Elo: refit on `resamples` resamplings of the games
    (with replacement). A resample in which the anchor played no game is redrawn."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    games = list(results)
    names = sorted({p for a, b, _ in games for p in (a, b)})
    draws: dict[str, list[float]] = {n: [] for n in names}
    done = 0
    while done < resamples:
        sample = [games[i] for i in rng.integers(0, len(games), len(games))]
        if not any(anchor in (a, b) for a, b, _ in sample):
            continue
        ratings = elo_from_results(sample, anchor=anchor)
        for name in names:
            if name in ratings:  # a player absent from this resample has no rating in it
                draws[name].append(ratings[name])
        done += 1
    tail = (1.0 - level) / 2 * 100
    return {n: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for n, v in draws.items() if v}


def elo_records(results: Sequence[Result], players: Sequence[LadderPlayer], anchor: str, resamples: int,
                seed: int, stage: str | None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(ratings, eval records): one record per player, split "elo", with the rating, its bootstrap
    interval (when resamples > 0) and the number of games. A snapshot's record carries its training
    stage and step, so reports can place it on the training curve."""
    ratings = elo_from_results(list(results), anchor=anchor)
    intervals = bootstrap_intervals(results, anchor, resamples, seed) if resamples else {}
    counts: dict[str, int] = {}
    for a, b, _ in results:
        counts[a], counts[b] = counts.get(a, 0) + 1, counts.get(b, 0) + 1
    where = {p.name: (p.stage, p.step) for p in players}
    records = []
    for name in sorted(ratings, key=lambda n: -ratings[n]):
        policy, _, decoder = name.partition(":")
        metrics: dict[str, Any] = {"elo": round(ratings[name], 1) + 0.0}
        if name in intervals:
            metrics["elo_low"] = round(intervals[name][0], 1) + 0.0
            metrics["elo_high"] = round(intervals[name][1], 1) + 0.0
        metrics["games"] = counts.get(name, 0)
        snap_stage, step = where.get(name, (None, None))
        records.append({"policy": policy, "split": "elo", "decoder": decoder or "-", "metrics": metrics,
                        "stage": snap_stage or stage, "step": step})
    return ratings, records


__all__ = ["LadderPlayer", "reference_players", "net_player", "snapshot_dirs", "round_robin",
           "bootstrap_intervals", "elo_records"]
