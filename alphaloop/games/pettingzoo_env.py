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

Illegal actions follow PettingZoo classic's `TerminateIllegalWrapper(illegal_reward=-1)`:
the offending player gets -1, the other player 0, the game ends for both, and
`infos[agent]["illegal_move"]` is True. The env never raises on an illegal action.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from alphaloop.games.base import GameState, IllegalActionError
from alphaloop.games.registry import game_class, new_game


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
        self.agents = self.possible_agents[:]
        obs_space = spaces.Dict({
            "observation": spaces.Box(0.0, 1.0, shape=cls.observation_shape, dtype=np.float32),
            "action_mask": spaces.Box(0, 1, shape=(cls.num_actions,), dtype=np.int8),
        })
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(cls.num_actions) for a in self.possible_agents}
        self.game_state: GameState = new_game(game_name)
        self._mover = 0

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

    def observe(self, agent: str) -> dict[str, np.ndarray]:
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

    def step(self, action: int) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        other = self.possible_agents[1 - self._mover]
        try:
            self.game_state.apply_action(int(action))
        except (IllegalActionError, TypeError, ValueError) as exc:
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

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        return str(self.game_state)

    def close(self) -> None:
        pass
