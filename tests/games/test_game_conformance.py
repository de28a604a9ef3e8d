"""Random-play conformance tests run identically over every game (as OpenSpiel does)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from alphaloop.games.base import TERMINAL, IllegalActionError
from alphaloop.games.registry import from_moves, game_class, game_names, new_game

GAMES = ["tictactoe", "connect4"]


def test_registry_lists_games_and_rejects_unknown():
    assert game_names() == sorted(GAMES)
    with pytest.raises(KeyError, match="unknown game 'chess'.*connect4"):
        new_game("chess")


def random_games(name: str, n: int, seed: int):
    rng = random.Random(seed)
    for _ in range(n):
        state = new_game(name)
        trajectory = [state.clone()]
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
            trajectory.append(state.clone())
        yield trajectory


@pytest.mark.parametrize("name", GAMES)
def test_random_play_invariants(name):
    cls = game_class(name)
    for trajectory in random_games(name, 200, seed=0):
        for ply, state in enumerate(trajectory):
            obs = state.observation_tensor()
            assert obs.shape == cls.observation_shape and obs.dtype == np.float32
            assert len(state.move_history()) == ply
            if state.is_terminal():
                assert state.legal_actions() == []
                assert state.current_player() == TERMINAL
                assert ply == len(trajectory) - 1
            else:
                assert state.current_player() == ply % 2      # players alternate, 0 first
                legal = state.legal_actions()
                assert legal == sorted(legal) and all(0 <= a < cls.num_actions for a in legal)
                assert state.returns() == [0.0, 0.0]
                # observation: plane 0 = mover's stones, plane 1 = opponent's, plane 2 = P0 to move
                assert obs[0].sum() == ply // 2 and obs[1].sum() == (ply + 1) // 2
                assert np.all(obs[2] == (1.0 if ply % 2 == 0 else 0.0))
        final = trajectory[-1]
        r = final.returns()
        assert r[0] in (-1.0, 0.0, 1.0) and r[0] + r[1] == 0.0
        if r[0] != 0.0:                                     # the last mover is the winner
            assert r[(len(final.move_history()) - 1) % 2] == 1.0


@pytest.mark.parametrize("name", GAMES)
def test_clone_is_independent(name):
    state = new_game(name)
    state.apply_action(state.legal_actions()[0])
    copy = state.clone()
    before = (str(state), state.move_history(), state.legal_actions())
    copy.apply_action(copy.legal_actions()[-1])
    assert (str(state), state.move_history(), state.legal_actions()) == before
    assert str(copy) != str(state)


@pytest.mark.parametrize("name", GAMES)
def test_moves_round_trip(name):
    for trajectory in random_games(name, 50, seed=1):
        for state in trajectory:
            again = from_moves(name, state.to_moves())
            assert again.move_history() == state.move_history()
            assert str(again) == str(state) and again.is_terminal() == state.is_terminal()


@pytest.mark.parametrize("name", GAMES)
def test_illegal_actions_raise_clearly(name):
    cls = game_class(name)
    state = new_game(name)
    with pytest.raises(IllegalActionError, match="out of range"):
        state.apply_action(cls.num_actions)
    with pytest.raises(IllegalActionError, match="out of range"):
        state.apply_action(-1)
    final = next(random_games(name, 1, seed=2))[-1]
    with pytest.raises(IllegalActionError, match="game is over"):
        final.apply_action(0)
    with pytest.raises(IllegalActionError, match="expected a"):
        from_moves(name, "1a")
    assert str(state).count(".") == 9 if name == "tictactoe" else 42


def test_tictactoe_cell_taken_and_connect4_column_full():
    state = new_game("tictactoe")
    state.apply_action(4)
    with pytest.raises(IllegalActionError, match="already taken"):
        state.apply_action(4)
    state = from_moves("connect4", "444444")
    assert 3 not in state.legal_actions()
    with pytest.raises(IllegalActionError, match="column 3 .* is full"):
        state.apply_action(3)
