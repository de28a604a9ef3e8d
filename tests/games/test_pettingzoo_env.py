"""The PettingZoo AEC adapter passes PettingZoo's own API test and its classic conventions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test import api_test

from alphaloop.games.pettingzoo_env import GameAECEnv


@pytest.mark.parametrize("name", ["tictactoe", "connect4"])
def test_api_test_passes(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")               # dict observations are expected here
        api_test(GameAECEnv(name), num_cycles=200, verbose_progress=False)


def play(env: GameAECEnv, actions: list[int]) -> None:
    for a in actions:
        env.step(a)


def test_win_rewards_and_observation_perspective():
    env = GameAECEnv("tictactoe")
    env.reset(seed=0)
    play(env, [0, 3, 1, 4])                           # X: 0, 1   O: 3, 4
    obs = env.observe("player_1")                     # O's view: O stones first
    assert obs["observation"][0, 1, 0] == 1 and obs["observation"][1, 0, 0] == 1
    assert obs["action_mask"].sum() == 0              # not O's turn
    mask = env.observe("player_0")["action_mask"]
    assert mask.dtype == np.int8 and mask.tolist() == [0, 0, 1, 0, 0, 1, 1, 1, 1]
    env.step(2)                                       # X completes the top row
    assert env.terminations == {"player_0": True, "player_1": True}
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    env.step(None)                                    # both agents are removed after the end
    env.step(None)
    assert env.agents == []


def test_illegal_move_loses_like_pettingzoo_classic():
    env = GameAECEnv("connect4")
    env.reset()
    play(env, [3, 3, 3, 3, 3, 3])                     # column 4 is full, X to move
    env.step(3)
    assert env.terminations["player_0"] and env.terminations["player_1"]
    assert env.rewards == {"player_0": -1.0, "player_1": 0.0}
    assert env.infos["player_0"]["illegal_move"] is True
    assert "full" in env.infos["player_0"]["error"]
