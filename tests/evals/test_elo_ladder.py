"""Elo ladder: round-robin bookkeeping, bootstrap intervals, snapshot discovery."""

from __future__ import annotations

import math

import pytest

from alphaloop import checkpoint as ckpt
from alphaloop.evals.elo_ladder import (
    LadderPlayer,
    bootstrap_intervals,
    elo_records,
    reference_players,
    round_robin,
    snapshot_dirs,
)
from alphaloop.games.players import PerfectTicTacToe, RandomPlayer


def test_reference_players():
    assert [p.name for p in reference_players("connect4", 3)] == ["random", "alphabeta@1", "alphabeta@2",
                                                                  "alphabeta@3"]
    assert [p.name for p in reference_players("tictactoe", 1)] == ["random", "alphabeta@1", "perfect"]


def test_round_robin_plays_every_pair_and_perfect_play_never_loses():
    players = [LadderPlayer("random", RandomPlayer), LadderPlayer("perfect", PerfectTicTacToe),
               LadderPlayer("random-2", RandomPlayer)]
    seen = []
    results = round_robin(players, "tictactoe", 6, opening=1, seed=0, progress=lambda k, n: seen.append((k, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(results) == 18
    pairs = {(a, b) for a, b, _ in results}
    assert pairs == {("random", "perfect"), ("random", "random-2"), ("perfect", "random-2")}
    for a, b, score in results:
        if a == "perfect":
            assert score >= 0.5
        if b == "perfect":
            assert score <= 0.5
    with pytest.raises(ValueError, match="unique"):
        round_robin(players[:1] * 2, "tictactoe", 2, 0, 0)


def _games(wins: int, losses: int) -> list[tuple[str, str, float]]:
    return [("strong", "random", 1.0)] * wins + [("strong", "random", 0.0)] * losses


def test_bootstrap_interval_contains_the_fit_and_narrows_with_more_games():
    ratings, records = elo_records(_games(15, 5), [], anchor="random", resamples=200, seed=0, stage="eval")
    assert ratings["strong"] == pytest.approx(400 * math.log10(3), abs=1.0)   # 75% score: +191 Elo
    strong = next(r for r in records if r["policy"] == "strong")
    m = strong["metrics"]
    assert m["elo_low"] < m["elo"] < m["elo_high"] and m["games"] == 20
    assert strong["split"] == "elo" and strong["decoder"] == "-" and strong["stage"] == "eval"
    anchor = next(r for r in records if r["policy"] == "random")["metrics"]
    assert anchor["elo"] == anchor["elo_low"] == anchor["elo_high"] == 0.0
    few = bootstrap_intervals(_games(15, 5), "random", 200, seed=0)["strong"]
    many = bootstrap_intervals(_games(150, 50), "random", 200, seed=0)["strong"]
    assert many[1] - many[0] < 0.5 * (few[1] - few[0])
    assert bootstrap_intervals(_games(15, 5), "random", 50, seed=1) == bootstrap_intervals(_games(15, 5), "random",
                                                                                         50, seed=1)


def test_snapshot_records_keep_their_stage_and_step():
    players = [LadderPlayer("alphazero@10:raw", RandomPlayer, stage="alphazero", step=10)]
    results = [("alphazero@10:raw", "random", 1.0), ("alphazero@10:raw", "random", 0.5)]
    _, records = elo_records(results, players, "random", 0, 0, stage="game_eval")
    snap = next(r for r in records if r["policy"] == "alphazero@10")
    assert (snap["stage"], snap["step"], snap["decoder"]) == ("alphazero", 10, "raw")
    assert "elo_low" not in snap["metrics"]                                # no resamples, no interval


def test_snapshot_dirs_skip_half_written_ones(tmp_path):
    root = tmp_path / "stages" / "1-alphazero" / "snapshots"
    for step in (20, 5):
        ckpt.write_atomic_dir(root / f"step-{step:07d}", lambda d: (d / "x").write_text("net"))
    (root / "step-0000030").mkdir()                                        # no manifest: a crash mid-write
    found = snapshot_dirs(tmp_path, [("alphazero", "1-alphazero"), ("missing", "0-missing")])
    assert [(name, step) for name, step, _ in found] == [("alphazero", 5), ("alphazero", 20)]
