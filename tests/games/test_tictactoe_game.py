"""Tic-tac-toe specifics: symmetries and the perfect player."""

from __future__ import annotations

import numpy as np
import pytest

from alphaloop.games.players import PerfectTicTacToe, RandomPlayer, play_game
from alphaloop.games.tictactoe import TicTacToeState, symmetries, transform_action


def onehot(a: int, n: int = 9) -> np.ndarray:
    p = np.zeros(n, dtype=np.float32)
    p[a] = 1.0
    return p


def test_symmetries_agree_with_transformed_games():
    moves = [0, 4, 5, 7]                          # an asymmetric position, then move 2
    state = TicTacToeState()
    for a in moves:
        state.apply_action(a)
    after = state.clone()
    after.apply_action(2)
    images = symmetries(state.observation_tensor(), onehot(2))
    assert len(images) == 8
    seen = set()
    for k, (obs_k, pol_k) in enumerate(images):
        # The game played with every move transformed has the transformed board ...
        image = TicTacToeState()
        for a in moves:
            image.apply_action(transform_action(a, k))
        np.testing.assert_array_equal(obs_k, image.observation_tensor())
        # ... and the policy mass sits on the image of the played cell.
        image.apply_action(int(np.argmax(pol_k)))
        after_k = symmetries(after.observation_tensor(), onehot(0))[k][0]
        np.testing.assert_array_equal(image.observation_tensor(), after_k)
        seen.add(obs_k.tobytes())
    assert len(seen) == 8                         # all eight images are distinct here
    np.testing.assert_array_equal(images[0][0], state.observation_tensor())


def test_symmetries_reject_bad_shapes():
    with pytest.raises(ValueError, match="policy must have shape"):
        symmetries(np.zeros((3, 3, 3)), np.zeros(7))


def test_board_rendering():
    assert str(TicTacToeState.from_moves("519")) == "O . .\n. X .\n. . X"


def test_perfect_values_hand_checked():
    perfect = PerfectTicTacToe()
    assert perfect.value(TicTacToeState()) == 0                      # tic-tac-toe is a draw
    assert perfect.move_values(TicTacToeState()) == [0] * 9          # every opening draws
    assert perfect.value(TicTacToeState.from_moves("15")) == 0       # corner, centre: draw
    assert perfect.value(TicTacToeState.from_moves("12")) == 1       # corner, adjacent edge: X wins
    assert perfect.value(TicTacToeState.from_moves("52")) == 1       # centre, edge: X wins
    # X (cells 1, 2) wins at once on 3 rather than blocking O's row 4-5-6.
    state = TicTacToeState.from_moves("1425")
    assert perfect.choose(state) == 2
    assert perfect.move_scores(state)[2] == 5                        # 1 + four empty cells left
    assert perfect.move_values(state)[5] == 0                        # blocking 6 only draws: O 3, X 7


@pytest.mark.parametrize("side", [0, 1])
def test_perfect_never_loses_to_random(side):
    for g in range(200):
        players = [RandomPlayer(seed=g)]
        players.insert(side, PerfectTicTacToe(seed=g))
        returns = play_game(TicTacToeState(), players)
        assert returns[side] >= 0.0, f"game {g}: perfect player lost as player {side}"


def test_batched_observations_and_legal_masks_match_one_state_at_a_time():
    import random

    from alphaloop.games.base import legal_masks, observations

    rng, states = random.Random(0), []
    for _ in range(40):
        state = TicTacToeState()
        states.append(state.clone())
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
            states.append(state.clone())
    assert any(s.is_terminal() for s in states)
    obs = TicTacToeState.observation_batch(states)
    assert obs.shape == (len(states), 3, 3, 3) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs, np.stack([s.observation_tensor() for s in states]))
    expected = np.zeros((len(states), 9), bool)
    for row, state in enumerate(states):
        expected[row, state.legal_actions()] = True
    np.testing.assert_array_equal(TicTacToeState.legal_mask_batch(states), expected)
    np.testing.assert_array_equal(observations(states), obs)
    np.testing.assert_array_equal(legal_masks(states, 9), expected)
