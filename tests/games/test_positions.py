"""Pons-format position files, generated position kinds, and move-quality helpers."""

from __future__ import annotations

import pytest

from alphaloop.games.connect4 import Connect4State
from alphaloop.games.positions import (
    KINDS,
    generate_positions,
    is_good_move,
    is_perfect_move,
    load_positions,
    matches,
    save_positions,
)
from alphaloop.games.solver import bitbully_available

from .test_solver import PONS_LINES


def test_round_trip(tmp_path):
    path = tmp_path / "set.txt"
    save_positions(path, PONS_LINES)
    assert load_positions(path) == PONS_LINES
    assert path.read_text().splitlines()[0] == "2252576253462244111563365343671351441 -1"


def test_load_rejects_bad_lines(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("4455 18\n4455 eighteen\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected '<moves> <score>'"):
        load_positions(path)


def test_pons_lines_fit_their_definitions():
    # Test_L3_R1 lines are end-game positions; Pons never asks for an immediate win.
    for moves, score in PONS_LINES[:-1]:
        assert matches("endgame", moves, score), moves
    assert matches("opening", *PONS_LINES[-1])
    assert not any(Connect4State.from_moves(m).can_win_next() for m, _ in PONS_LINES)


@pytest.mark.skipif(not bitbully_available(), reason="bitbully is not installed")
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generated_kinds_satisfy_definitions(kind):
    from alphaloop.games.solver import solve

    items = generate_positions(kind, 6, seed=3)
    assert len(items) == 6 and len({m for m, _ in items}) == 6
    for moves, score in items:
        assert matches(kind, moves, score)
        assert solve(moves) == score
    assert generate_positions(kind, 6, seed=3) == items          # seeded


def test_generate_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        generate_positions("midgame", 1)


def test_move_quality():
    scores = [None, 3, 1, -2, None, 0, 3]
    assert is_perfect_move(scores, 1) and is_perfect_move(scores, 6)
    assert not is_perfect_move(scores, 2) and is_good_move(scores, 2)     # still a win
    assert not is_good_move(scores, 5) and not is_good_move(scores, 3)
    lost = [-5, -1, -3, None, None, None, None]
    assert is_perfect_move(lost, 1) and is_good_move(lost, 0)             # every move loses
    drawn = [0, -4, None, None, None, None, None]
    assert is_good_move(drawn, 0) and not is_good_move(drawn, 1)
    with pytest.raises(ValueError, match="not legal"):
        is_good_move(scores, 0)


def test_move_scores_sidecar_round_trip(tmp_path):
    from alphaloop.games.positions import load_move_scores, move_scores_path, save_move_scores

    path = move_scores_path(tmp_path / "set.txt")
    assert path.name == "set.txt.move-scores"
    rows = [("4455", [-4, -3, 18, 2, 2, 18, -3]), ("444444", [-1, 0, 1, None, 1, 0, -1])]
    save_move_scores(path, rows)
    assert path.read_text().splitlines()[1] == "444444 -1 0 1 - 1 0 -1"
    assert load_move_scores(path) == rows
    path.write_text("4455 1 2 3\n")
    with pytest.raises(ValueError, match="set.txt.move-scores:1: expected '<moves>' and 7 scores"):
        load_move_scores(path)
    with pytest.raises(ValueError, match="7 entries"):
        save_move_scores(path, [("4", [0, 0])])


def test_move_quality_rates():
    from alphaloop.games.positions import move_quality

    won = [None, 3, 1, -2, None, 0, 3]
    lost = [-5, -1, -3, None, None, None, None]
    # won: perfect (1); won: good only (2); won: blunder (5); lost: any move is good, only 1 is perfect.
    rates = move_quality([won, won, won, lost], [1, 2, 5, 0])
    assert rates == {"good_move_rate": 0.75, "perfect_move_rate": 0.25, "n": 4}
    with pytest.raises(ValueError, match="at least one position"):
        move_quality([], [])
    with pytest.raises(ValueError):
        move_quality([won], [1, 2])                                       # one move per position


@pytest.mark.skipif(not bitbully_available(), reason="bitbully is not installed")
def test_generation_reports_progress_and_labels_moves():
    from alphaloop.games.positions import good_move_rate, label_moves
    from alphaloop.games.solver import best_moves

    seen = []
    items = generate_positions("middle-soon", 4, seed=1, progress=seen.append)
    assert seen == [1, 2, 3, 4]
    for (_, score), row in zip(items, label_moves(items)):
        assert max(s for s in row if s is not None) == score
    solver = good_move_rate(items, lambda state: best_moves(state)[0])
    assert solver == {"good_move_rate": 1.0, "perfect_move_rate": 1.0, "n": 4}
