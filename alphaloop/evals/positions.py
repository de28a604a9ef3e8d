"""Move quality on solver-labelled connect-four positions: does the player keep the game-theoretic
outcome (a *good* move) or even play a solver-best move (a *perfect* move)?

Win/draw/loss matches against alpha-beta say little once a net is strong, and nothing about *where*
it goes wrong. Pascal Pons' test sets ("Solving Connect 4", blog.gamesolver.org, part 2) do: random
positions from the opening, the middle game and the end game, each labelled by a perfect solver.
For a position with per-column scores s(c) (Pons' convention, `games/solver.py`) and the chosen
column m:

    perfect(m)  <=>  s(m) = max_c s(c)                       (fastest win / slowest loss)
    good(m)     <=>  sign s(m) = sign max_c s(c)             (a win stays a win, a draw a draw;
                                                              in a lost position every move is good)

and the rates are their means over the set. Positions come from random play with their own seed
(`games/positions.py`), never from a run's training games. The same numbers for plain UCT with
random roll-outs (Kocsis & Szepesvari 2006) give a search-only baseline at the same budget.

Sets are given as kinds (`endgame`, `middle-soon`, `middle-late`, `opening`), generated
deterministically from a seed and cached as `<kind>-<count>-seed<seed>.txt` (+ its `.move-scores`
sidecar) in a cache directory, or as Pons-format files (their sidecar is used when present).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alphaloop.games.connect4 import Connect4State
from alphaloop.games.positions import (
    KINDS,
    MoveScores,
    generate_positions,
    is_good_move,
    is_perfect_move,
    label_moves,
    load_move_scores,
    load_positions,
    move_quality,
    move_scores_path,
    save_move_scores,
    save_positions,
)

Progress = Callable[[str, int, int], None]  # (what, done, total)
CHUNK = 128  # positions searched in lock-step per evaluator call


@dataclass(frozen=True)
class PositionSet:
    """Positions (1-based move strings) with every column's solver score."""

    name: str                   # the kind, or the file's stem
    moves: list[str]
    scores: list[MoveScores]

    @property
    def split(self) -> str:
        return f"positions-{self.name}"

    def states(self) -> list[Connect4State]:
        return [Connect4State.from_moves(m) for m in self.moves]


def _write_text_atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    write(tmp)
    tmp.replace(path)


def _cached_scores(path: Path, moves: list[str]) -> list[MoveScores] | None:
    """The sidecar's scores if it exists and lists exactly `moves` (a prefix of it is enough)."""
    if not path.is_file():
        return None
    rows = load_move_scores(path)
    if [m for m, _ in rows[:len(moves)]] != moves:
        return None
    return [s for _, s in rows[:len(moves)]]


def _label(name: str, items: list[tuple[str, int]], sidecar: Path, progress: Progress | None) -> list[MoveScores]:
    moves = [m for m, _ in items]
    scores = _cached_scores(sidecar, moves)
    if scores is None:
        tick = None if progress is None else (lambda k: progress(f"{name}: scoring moves", k, len(items)))
        scores = label_moves(items, progress=tick)
        _write_text_atomic(sidecar, lambda p: save_move_scores(p, zip(moves, scores)))
    return scores


def position_set(spec: str, count: int, seed: int, cache_dir: str | Path,
                 progress: Progress | None = None) -> PositionSet:
    """The set `spec` with its per-column scores: a kind (`count` positions generated from `seed`) or a
    Pons-format file (its first `count` positions). Needs bitbully unless everything is cached."""
    cache_dir = Path(cache_dir)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if spec in KINDS:
        cache_dir.mkdir(parents=True, exist_ok=True)
        path = cache_dir / f"{spec}-{count}-seed{seed}.txt"
        items = load_positions(path) if path.is_file() else []
        if len(items) != count:
            tick = None if progress is None else (lambda k: progress(f"{spec}: generating", k, count))
            items = generate_positions(spec, count, seed=seed, progress=tick)
            _write_text_atomic(path, lambda p: save_positions(p, items))
        return PositionSet(spec, [m for m, _ in items], _label(spec, items, move_scores_path(path), progress))
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"position set {spec!r} is neither a kind ({', '.join(KINDS)}) nor an existing file")
    items = load_positions(path)[:count]
    if not items:
        raise ValueError(f"position file {spec} holds no positions")
    moves = [m for m, _ in items]
    scores = _cached_scores(move_scores_path(path), moves)
    if scores is None:  # never write next to the user's file: cache by content
        cache_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256("\n".join(moves).encode()).hexdigest()[:12]
        scores = _label(path.stem, items, cache_dir / f"{path.stem}-{digest}.move-scores", progress)
    return PositionSet(path.stem, moves, scores)


# ---------------------------------------------------------------- choosing moves

def _search_moves(search, states: Sequence[Connect4State], rng: np.random.Generator) -> list[int]:
    """Most-visited move of a fresh search from each state, CHUNK trees in lock-step at a time."""
    from alphaloop.search.mcts import most_visited

    out: list[int] = []
    for start in range(0, len(states), CHUNK):
        search.reset()  # unrelated positions: never reuse a tree across chunks
        out += most_visited(search.search_many(list(states[start:start + CHUNK])), rng)
    return out


def net_moves(net, states: Sequence[Connect4State], sims: int, seed: int) -> list[int]:
    """The net's move in each state: sims 0 = argmax of the policy head over legal moves (as
    `NetPlayer`), else the most visited move of PUCT with `sims` simulations and no root noise."""
    from alphaloop.search.mcts import MCTS, play_config
    from alphaloop.search.net_evaluator import NetEvaluator, greedy_moves

    if sims < 0:
        raise ValueError(f"sims must be >= 0, got {sims}")
    evaluator = NetEvaluator(net)
    if sims == 0:
        return greedy_moves(evaluator, states, net.num_actions)
    search = MCTS(evaluator, play_config(sims), seed=seed)
    return _search_moves(search, states, np.random.default_rng(seed))


def uct_moves(states: Sequence[Connect4State], sims: int, seed: int) -> list[int]:
    """Plain UCT with one uniformly random roll-out per leaf: search alone, no learned knowledge."""
    from alphaloop.search import MCTS, RandomRolloutEvaluator, play_config

    if sims < 1:
        raise ValueError(f"UCT needs sims >= 1, got {sims}")
    search = MCTS(RandomRolloutEvaluator(seed), play_config(sims, selection="uct"), seed=seed)
    return _search_moves(search, states, np.random.default_rng(seed))


# ---------------------------------------------------------------- eval records

def _record(policy: str, position_set_: PositionSet, decoder: str, moves: list[int]) -> dict[str, Any]:
    metrics = move_quality(position_set_.scores, moves)
    metrics = {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}
    return {"policy": policy, "split": position_set_.split, "decoder": decoder, "metrics": metrics}


def net_position_records(policy: str, net, sets: Sequence[PositionSet], sims: Sequence[int],
                         seed: int) -> list[dict[str, Any]]:
    """{"policy", "split": "positions-<set>", "decoder": "raw" | "mcts@N", "metrics"} per set x budget."""
    records = []
    for position_set_ in sets:
        states = position_set_.states()
        for n in sims:
            decoder = "raw" if n == 0 else f"mcts@{n}"
            records.append(_record(policy, position_set_, decoder, net_moves(net, states, n, seed)))
    return records


def random_position_records(sets: Sequence[PositionSet]) -> list[dict[str, Any]]:
    """The floor: a uniformly random legal move's *expected* rates (exact, no sampling), policy
    "random", decoder "expected". In end-game sets most moves keep the outcome, so this is far from 0."""
    records = []
    for position_set_ in sets:
        good = perfect = 0.0
        for row in position_set_.scores:
            legal = [c for c, s in enumerate(row) if s is not None]
            good += sum(is_good_move(row, c) for c in legal) / len(legal)
            perfect += sum(is_perfect_move(row, c) for c in legal) / len(legal)
        n = len(position_set_.scores)
        records.append({"policy": "random", "split": position_set_.split, "decoder": "expected",
                        "metrics": {"good_move_rate": round(good / n, 6), "perfect_move_rate": round(perfect / n, 6),
                                    "n": n}})
    return records


def uct_position_records(sets: Sequence[PositionSet], sims: Sequence[int], seed: int) -> list[dict[str, Any]]:
    """The search-only baseline: policy "uct", decoder "uct@N", per set x budget."""
    return [_record("uct", s, f"uct@{n}", uct_moves(s.states(), n, seed)) for s in sets for n in sims]


__all__ = ["PositionSet", "position_set", "net_moves", "uct_moves", "net_position_records",
           "uct_position_records",
           "random_position_records"]
