"""The bitbully-backed solver against Pons' published scores and hand-verified positions."""

from __future__ import annotations

import pytest

from alphaloop.games.connect4 import Connect4State
from alphaloop.games.solver import bitbully_available, remaining_moves

needs_bitbully = pytest.mark.skipif(not bitbully_available(), reason="bitbully is not installed")

# The first lines of Pons' Test_L3_R1 (End-Easy) file, plus a Begin-Easy line.
PONS_LINES = [
    ("2252576253462244111563365343671351441", -1),
    ("7422341735647741166133573473242566", 1),
    ("23163416124767223154467471272416755633", 0),
    ("71255763773133525731261364622167124446454", 0),
    ("65214673556155731566316327373221417", -1),
    ("52677675164321472411331752454", 0),
    ("3135151421347443544172316522225776773566", 0),
    ("562154564361751726662253737734213275114", 0),
    ("233377345754465174223731671122611552", 1),
    ("6763525635134453444361412671365712", -1),
    ("43745416472735", -13),
]

# Checked by hand against the convention score = +-(22 - stones of the winner):
HAND = [
    ("121212", 18),        # X completes column 1 with its 4th stone: (43 - 6) // 2
    ("4455", 18),          # X plays 3 or 6: an open three, wins with its 4th stone (Pons' example)
    ("2737", 18),          # X plays 4: 2-3-4 with both ends open, wins with its 4th stone
    ("27374", -18),        # ... so O, to move, loses to X's 4th stone
    ("44455554221", -15),  # Pons' example: O wins next move with its 7th stone
]


@needs_bitbully
@pytest.mark.parametrize("moves, score", PONS_LINES + HAND)
def test_scores(moves, score):
    from alphaloop.games.solver import move_scores, solve

    assert solve(moves) == score
    assert max(s for s in move_scores(moves) if s is not None) == score


@needs_bitbully
def test_move_scores_per_column():
    from alphaloop.games.solver import best_moves, move_scores

    state = Connect4State.from_moves("121212")
    scores = move_scores(state)
    assert scores[0] == 18 and scores[2] == -18     # column 3 lets O complete column 2
    assert best_moves(state) == [0]
    full = move_scores("444444")
    assert full[3] is None and all(s is not None for i, s in enumerate(full) if i != 3)
    assert move_scores("")[3] == 1                  # the empty board: centre wins with X's last stone


@needs_bitbully
def test_rejects_finished_games():
    from alphaloop.games.solver import solve

    with pytest.raises(ValueError, match="non-terminal"):
        solve("1212121")


def test_remaining_moves():
    assert remaining_moves(18, 4) == 3             # "4455": X wins at ply 7
    assert remaining_moves(-1, 37) == 4            # X wins with its 21st stone, ply 41
    assert remaining_moves(-13, 14) == 4           # O wins with its 9th stone, ply 18
    assert remaining_moves(0, 30) == 12            # a draw fills the board
