"""Connect-four specifics: wins in all four directions, bitboard helpers, symmetries."""

from __future__ import annotations

import random

import numpy as np
import pytest

from alphaloop.games.connect4 import Connect4State, symmetries


def brute_force_has_four(board: list[list[str]], stone: str) -> bool:
    rows, cols = len(board), len(board[0])
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + i * dr, c + i * dc) for i in range(4)]
                if all(0 <= y < rows and 0 <= x < cols and board[y][x] == stone for y, x in cells):
                    return True
    return False


@pytest.mark.parametrize("moves, direction", [
    ("1122334", "horizontal"),
    ("1212121", "vertical"),
    ("12234334544", "diagonal /"),
    ("76654554344", "diagonal \\"),
])
def test_win_in_each_direction(moves, direction):
    before = Connect4State.from_moves(moves[:-1])
    assert not before.is_terminal()
    assert before.is_winning_move(int(moves[-1]) - 1) and before.can_win_next()
    state = Connect4State.from_moves(moves)
    assert state.is_terminal() and state.winner() == 0 and state.returns() == [1.0, -1.0]


def test_win_detection_matches_brute_force_on_random_games():
    rng = random.Random(0)
    for _ in range(100):
        state = Connect4State()
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
            board = [line.split() for line in str(state).splitlines()[:-1]]
            mover = "X" if state.num_moves() % 2 == 1 else "O"
            assert state.is_terminal() == (brute_force_has_four(board, mover) or state.num_moves() == 42)


def test_rendering_and_observation_orientation():
    state = Connect4State.from_moves("4453")
    assert str(state).splitlines()[-3:-1] == [". . . O . . .", ". . O X X . ."]
    assert str(state).splitlines()[-1] == "1 2 3 4 5 6 7"
    obs = state.observation_tensor()                 # X (player 0) to move: X stones in plane 0
    assert obs[0, 5, 3] == 1 and obs[0, 5, 4] == 1 and obs[1, 4, 3] == 1 and obs[1, 5, 2] == 1
    assert obs[:2].sum() == 4 and obs[2].min() == 1.0


def test_symmetries_mirror_consistently():
    moves = "4453612"
    state = Connect4State.from_moves(moves)
    policy = np.zeros(7, dtype=np.float32)
    policy[1] = 0.75
    policy[6] = 0.25
    (obs0, pol0), (obs1, pol1) = symmetries(state.observation_tensor(), policy)
    np.testing.assert_array_equal(obs0, state.observation_tensor())
    mirror = Connect4State.from_moves("".join(str(8 - int(c)) for c in moves))
    np.testing.assert_array_equal(obs1, mirror.observation_tensor())
    assert pol1[5] == 0.75 and pol1[0] == 0.25 and pol1.sum() == 1.0
    # playing the policy's top move on the mirror gives the mirror of playing it here
    state.apply_action(1)
    mirror.apply_action(int(np.argmax(pol1)))
    np.testing.assert_array_equal(symmetries(state.observation_tensor(), policy)[1][0],
                                  mirror.observation_tensor())


def test_key_and_equality():
    a, b = Connect4State.from_moves("4453"), Connect4State.from_moves("5344")
    assert a == b and hash(a) == hash(b)             # transpositions share a key
    assert a != Connect4State.from_moves("4435")


def random_positions(count: int, seed: int) -> list[Connect4State]:
    """Every position of `count` random games, terminal ones included."""
    rng = random.Random(seed)
    states = []
    for _ in range(count):
        state = Connect4State()
        states.append(state.clone())
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
            states.append(state.clone())
    return states


def test_batched_observations_and_legal_masks_match_one_state_at_a_time():
    from alphaloop.games.base import legal_masks, observations

    states = random_positions(30, seed=1)
    assert any(s.is_terminal() for s in states) and len(states) > 300
    obs = Connect4State.observation_batch(states)
    assert obs.shape == (len(states), 3, 6, 7) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, np.stack([s.observation_tensor() for s in states]))
    expected = np.zeros((len(states), 7), bool)
    for row, state in enumerate(states):
        expected[row, state.legal_actions()] = True
    np.testing.assert_array_equal(Connect4State.legal_mask_batch(states), expected)
    np.testing.assert_array_equal(observations(states), obs)        # the dispatching helpers
    np.testing.assert_array_equal(legal_masks(states, 7), expected)


def test_clones_share_no_mutable_history():
    state = Connect4State.from_moves("44")
    copy = state.clone()
    copy.apply_action(0)
    assert state.move_history() == [3, 3] and copy.move_history() == [3, 3, 0]
    history = state.move_history()
    history.append(5)                                 # a caller's list never aliases the state
    assert state.to_moves() == "44"


def test_action_types_and_fresh_legal_lists():
    from alphaloop.games.base import IllegalActionError

    state = Connect4State()
    state.apply_action(np.int64(3))                   # numpy ints are accepted and stored as ints
    assert state.move_history() == [3] and type(state.move_history()[0]) is int
    for bad in (True, 2.0, "1", 7, -1):
        with pytest.raises(IllegalActionError):
            state.apply_action(bad)
    legal = state.legal_actions()
    legal.clear()                                     # callers may mutate the list they get
    assert state.legal_actions() == [0, 1, 2, 3, 4, 5, 6]
    full = Connect4State.from_moves("444444")
    assert full.legal_actions() == [0, 1, 2, 4, 5, 6]
