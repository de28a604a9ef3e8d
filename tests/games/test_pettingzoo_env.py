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


@pytest.mark.parametrize("action", [3.7, 3.0, "4", True, np.bool_(False), None, float("inf"), float("-inf"),
                                    float("nan"), np.array([3.0]), np.array([3]), np.array(2.0), np.float32(1),
                                    [1], -1, 7, 2**80])
def test_non_integer_or_out_of_range_action_is_an_illegal_move(action):
    """Gymnasium's Discrete takes ints, numpy integers and 0-d integer arrays; anything else ends the
    game as an illegal move (never `int(3.7) == 3`, never a crash on inf)."""
    env = GameAECEnv("connect4")
    env.reset()
    env.step(action)
    assert env.rewards == {"player_0": -1.0, "player_1": 0.0}
    assert env.terminations == {"player_0": True, "player_1": True}
    assert env.infos["player_0"]["illegal_move"] is True
    assert env.game_state.move_history() == []
    env.step(None)
    env.step(None)
    assert env.agents == []


@pytest.mark.parametrize("action", [3, np.int8(3), np.int64(3), np.uint16(3), np.array(3), np.array(3, np.int32)])
def test_integer_types_are_moves(action):
    env = GameAECEnv("connect4")
    env.reset()
    env.step(action)
    assert env.game_state.move_history() == [3] and not any(env.terminations.values())
    assert env.agent_selection == "player_1"


def outcome(call):
    try:
        call()
    except Exception as exc:
        return type(exc), str(exc)
    return None


def test_reset_before_use_is_enforced_like_pettingzoos_order_enforcing_wrapper():
    """The same exceptions, with the same messages, as the installed PettingZoo's OrderEnforcingWrapper
    (the outer wrapper of every classic env) raises around the same env."""
    from pettingzoo.utils.wrappers import OrderEnforcingWrapper

    calls = {
        "step": lambda e: e.step(0), "observe": lambda e: e.observe("player_0"), "render": lambda e: e.render(),
        "agent_iter": lambda e: e.agent_iter(), "state": lambda e: e.state(), "last": lambda e: e.last(),
        **{name: (lambda e, name=name: getattr(e, name)) for name in
           ("agents", "num_agents", "agent_selection", "rewards", "terminations", "truncations", "infos")},
    }
    for name, call in calls.items():
        ours = outcome(lambda call=call: call(GameAECEnv("tictactoe")))
        theirs = outcome(lambda call=call: call(OrderEnforcingWrapper(GameAECEnv("tictactoe"))))
        assert ours is not None and ours == theirs, name
    before_reset = (AssertionError, "reset() needs to be called before step.")
    assert outcome(lambda: GameAECEnv("tictactoe").step(0)) == before_reset
    env = GameAECEnv("tictactoe")
    assert env.possible_agents == ["player_0", "player_1"] and env.max_num_agents == 2  # fine before reset
    env.reset()
    assert env.num_agents == 2 and env.observe("player_0")["action_mask"].sum() == 9


def test_step_after_both_agents_are_done_only_warns():
    env = GameAECEnv("tictactoe")
    env.reset()
    env.step(9)                                       # illegal: the game ends
    env.step(None)
    env.step(None)
    assert env.agents == []
    env.step(None)                                    # PettingZoo logs a warning here, and so do we
    assert env.agents == []
