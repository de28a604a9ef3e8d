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
