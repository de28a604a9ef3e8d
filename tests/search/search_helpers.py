"""Shared test fixtures for search: a tiny game with a known solution and scripted evaluators."""

from __future__ import annotations

import numpy as np

from alphaloop.games.base import IllegalActionError


class Nim:
    """Take 1, 2 or 3 stones (actions 0, 1, 2); whoever takes the last stone wins. A pile that is a
    multiple of 4 is lost for the player to move, so from 5 the only winning move is "take 1"."""

    game_name = "nim"
    num_actions = 3
    observation_shape = (1,)

    def __init__(self, stones: int = 5) -> None:
        self.stones, self.moves = stones, []

    def legal_actions(self) -> list[int]:
        return [a for a in range(3) if a < self.stones]

    def apply_action(self, action: int) -> None:
        if action not in self.legal_actions():
            raise IllegalActionError(f"nim: cannot take {action + 1} of {self.stones}")
        self.stones -= action + 1
        self.moves.append(action)

    def clone(self) -> Nim:
        other = Nim(self.stones)
        other.moves = list(self.moves)
        return other

    def is_terminal(self) -> bool:
        return self.stones == 0

    def returns(self) -> list[float]:
        if not self.is_terminal():
            return [0.0, 0.0]
        return [1.0, -1.0] if (len(self.moves) - 1) % 2 == 0 else [-1.0, 1.0]

    def current_player(self) -> int:
        return -1 if self.is_terminal() else len(self.moves) % 2

    def observation_tensor(self) -> np.ndarray:
        return np.array([self.stones], np.float32)

    def move_history(self) -> list[int]:
        return list(self.moves)


class ConstEvaluator:
    """Uniform priors and a constant (deliberately wrong) value; refuses terminal states."""

    def __init__(self, value: float = 0.0) -> None:
        self.value, self.calls, self.sizes = value, 0, []

    def evaluate(self, states):
        assert not any(s.is_terminal() for s in states), "search sent a terminal state to the evaluator"
        self.calls += 1
        self.sizes.append(len(states))
        n, a = len(states), states[0].num_actions
        return np.full((n, a), 1.0 / a), np.full(n, self.value)


class HashEvaluator(ConstEvaluator):
    """Deterministic, position-dependent priors and values (a stand-in for a fixed net)."""

    def evaluate(self, states):
        super().evaluate(states)
        priors, values = [], []
        for s in states:
            rng = np.random.default_rng(hash(tuple(s.move_history())) % 2**32)
            priors.append(rng.dirichlet(np.ones(s.num_actions)))
            values.append(rng.uniform(-1, 1))
        return np.array(priors), np.array(values)
