"""PettingZoo AEC adapter over any registered game, so third-party multi-agent tooling
(and `pettingzoo.test.api_test`) can drive our games.

Agents are "player_0" (moves first) and "player_1". Observations follow PettingZoo's
classic board games: a dict with
    "observation": float32 planes of shape `observation_shape` from the observing agent's
                   point of view (its stones, the opponent's stones, all-ones iff player 0
                   is to move), and
    "action_mask": int8 vector over the action space, 1 for legal moves (all zeros for an
                   agent that is not to move, and at the end).
Rewards are +1 / -1 to the winner / loser and 0 to both for a draw, given on the final step.

Actions follow Gymnasium's `Discrete(num_actions)`: a Python int, a numpy integer or a 0-d
integer array (what `Discrete.contains` accepts, except that bools are refused too). Anything
else -- 3.7, "4", True, None, inf, a 1-element array -- is an illegal action, like an occupied
cell or a full column. Illegal actions follow PettingZoo classic's
`TerminateIllegalWrapper(illegal_reward=-1)`: the offending player gets -1, the other player 0,
the game ends for both, and `infos[agent]["illegal_move"]` is True (with the reason in
`infos[agent]["error"]`). A live agent's step never raises, whatever the action.

Call order is enforced as PettingZoo's `OrderEnforcingWrapper` (which wraps every classic env)
enforces it, with its exact exceptions: `step`, `observe`, `render`, `state` and `agent_iter`
before the first `reset` raise AssertionError ("reset() needs to be called before step.");
`agents`, `num_agents`, `agent_selection`, `rewards`, `terminations`, `truncations` and `infos`
before it raise AttributeError ("rewards cannot be accessed before reset"); a `step` after both
agents are done only logs PettingZoo's warning.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils.env_logger import EnvLogger

from alphaloop.games.base import GameState, IllegalActionError
from alphaloop.games.registry import game_class, new_game

# What PettingZoo's OrderEnforcingWrapper refuses to read before the first reset.
_NEEDS_RESET = frozenset({"rewards", "terminations", "truncations", "infos", "agent_selection",
                          "num_agents", "agents"})


def discrete_action(action: Any) -> int | None:
    """`action` as an int if Gymnasium's `Discrete` would take it as one (a Python int, a numpy
    integer, a 0-d integer array), else None. Bools are refused although `Discrete.contains(True)`
    holds: True is a bug in the caller, not column 2. Never raises: `int(3.7)` would silently
    play 3 and `int(inf)` raise, which is why nothing here converts a float."""
    if isinstance(action, (bool, np.bool_)):
        return None
    if isinstance(action, (int, np.integer)):
        return int(action)
    if isinstance(action, np.ndarray) and action.shape == () and np.issubdtype(action.dtype, np.integer):
        return int(action)
    return None


def _describe(action: Any) -> str:
    """Type and a short repr for the illegal-move message (a repr that fails is not our crash)."""
    try:
        text = repr(action)
    except Exception:  # an arbitrary object's __repr__ may raise anything
        text = "<unprintable>"
    return f"{type(action).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


class GameAECEnv(AECEnv):
    metadata = {"render_modes": ["ansi"], "name": "alphaloop_game_v0", "is_parallelizable": False}

    def __init__(self, game_name: str, render_mode: str | None = None) -> None:
        super().__init__()
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        cls = game_class(game_name)
        self.game_name = game_name
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "name": f"alphaloop_{game_name}_v0"}
        self.possible_agents = ["player_0", "player_1"]
        obs_space = spaces.Dict({
            "observation": spaces.Box(0.0, 1.0, shape=cls.observation_shape, dtype=np.float32),
            "action_mask": spaces.Box(0, 1, shape=(cls.num_actions,), dtype=np.int8),
        })
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(cls.num_actions) for a in self.possible_agents}
        self.game_state: GameState = new_game(game_name)
        self._mover = 0
        self._has_reset = False

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails, i.e. for the per-episode attributes before reset.
        if name in _NEEDS_RESET:
            raise AttributeError(f"{name} cannot be accessed before reset")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.game_state = new_game(self.game_name)
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos: dict[str, dict[str, Any]] = {a: {} for a in self.agents}
        self._mover = 0
        self.agent_selection = self.possible_agents[0]
        self._has_reset = True

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        if not self._has_reset:
            EnvLogger.error_observe_before_reset()
        obs = self.game_state.observation_tensor()
        me = self.possible_agents.index(agent)
        # observation_tensor is from the mover's view; after the game ends the "mover" is
        # whoever would move next, i.e. parity of the number of moves played.
        mover = len(self.game_state.move_history()) % 2
        if me != mover:
            obs = obs[[1, 0, 2]]
        mask = np.zeros(self.game_state.num_actions, dtype=np.int8)
        if agent == self.agent_selection and not self.terminations[agent]:
            mask[self.game_state.legal_actions()] = 1
        return {"observation": obs, "action_mask": mask}

    def step(self, action: Any) -> None:
        if not self._has_reset:
            EnvLogger.error_step_before_reset()
        if not self.agents:
            EnvLogger.warn_step_after_terminated_truncated()
            return
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        other = self.possible_agents[1 - self._mover]
        move = discrete_action(action)
        n = self.game_state.num_actions
        try:
            if move is None:
                raise IllegalActionError(f"action {_describe(action)} is not an integer: "
                                         f"Discrete({n}) takes an int in 0..{n - 1}")
            if not 0 <= move < n:
                raise IllegalActionError(f"action {move} is outside Discrete({n}): expected 0..{n - 1}")
            self.game_state.apply_action(move)
        except IllegalActionError as exc:
            self.rewards[agent] = -1.0
            self.terminations = dict.fromkeys(self.agents, True)
            self.infos[agent] = {"illegal_move": True, "error": str(exc)}
        else:
            if self.game_state.is_terminal():
                returns = self.game_state.returns()
                self.rewards = {a: float(returns[i]) for i, a in enumerate(self.possible_agents)}
                self.terminations = dict.fromkeys(self.agents, True)
        self._mover = 1 - self._mover
        self.agent_selection = other
        self._accumulate_rewards()

    def agent_iter(self, max_iter: int = 2**63):
        if not self._has_reset:
            EnvLogger.error_agent_iter_before_reset()
        return super().agent_iter(max_iter)

    def state(self) -> np.ndarray:
        if not self._has_reset:
            EnvLogger.error_state_before_reset()
        return super().state()

    def render(self) -> str | None:
        if not self._has_reset:
            EnvLogger.error_render_before_reset()
        if self.render_mode is None:
            return None
        return str(self.game_state)

    def close(self) -> None:
        pass
