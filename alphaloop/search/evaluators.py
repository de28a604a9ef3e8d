"""Leaf evaluators: what tree search asks "how good is this position, and which moves look promising?".

One batched call per search step (mctx style): `evaluate(states) -> (priors[B, A], values[B])`.

    priors[b, a]  prior probability of action a in states[b], over ALL num_actions actions (the search
                  masks illegal actions and renormalises, so an evaluator may ignore legality)
    values[b]     expected outcome in [-1, 1] for the player to move in states[b]

Search never sends a terminal state: terminal leaves take the game's exact `returns()`.
The net-backed evaluator lives in `alphaloop/search/net_evaluator.py`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from alphaloop.games.base import GameState, IllegalActionError


class Evaluator(Protocol):
    def evaluate(self, states: Sequence[GameState]) -> tuple[np.ndarray, np.ndarray]:
        """(priors float[B, num_actions], values float[B]) for a batch of non-terminal states."""
        ...


def _num_actions(states: Sequence[GameState]) -> int:
    if len(states) == 0:
        return 0
    num_actions = states[0].num_actions
    for i, state in enumerate(states):
        if state.num_actions != num_actions:
            raise ValueError(
                f"states[{i}]: expected one game per batch ({num_actions} actions), got {state.num_actions}"
            )
    return num_actions


class UniformEvaluator:
    """Uniform priors and value 0: search guided by nothing but its own tree (measures tree overhead)."""

    def evaluate(self, states: Sequence[GameState]) -> tuple[np.ndarray, np.ndarray]:
        num_actions = _num_actions(states)
        if num_actions == 0:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        batch = len(states)
        return np.full((batch, num_actions), 1.0 / num_actions, np.float32), np.zeros(batch, np.float32)


class RandomRolloutEvaluator:
    """Uniform priors; value = mean outcome of `rollouts` uniformly random play-outs to the end.

    With `MCTSConfig(selection="uct")` this is textbook UCT (Kocsis & Szepesvari 2006): the value
    of a new leaf is the result of one random game played from it. Rollouts use Python's `random`
    (faster than numpy for one draw at a time) seeded once, so a search is reproducible.
    """

    def __init__(self, seed: int = 0, rollouts: int = 1) -> None:
        if not isinstance(rollouts, int) or rollouts < 1:
            raise ValueError(f"rollouts: expected an int >= 1, got {rollouts!r}")
        self.rollouts = rollouts
        self._rng = random.Random(seed)

    def rollout_value(self, state: GameState) -> float:
        """Mean return for the player to move in `state` over `rollouts` random play-outs.

        Moves are drawn by rejection: a uniform pick from the last known legal list, which is
        refreshed only when a pick turns out illegal (`apply_action` raises and leaves the state
        unchanged). That is exactly uniform over the legal moves whenever legal sets only shrink
        as the game goes on (true of placement games: tic-tac-toe, connect four) and halves the
        cost of a connect-four play-out compared with calling `legal_actions()` every move.
        """
        player = state.current_player()
        if player < 0:
            raise ValueError("state: expected a non-terminal state (terminal values come from returns())")
        rand = self._rng.random
        total = 0.0
        for _ in range(self.rollouts):
            s = state.clone()
            candidates = s.legal_actions()
            while not s.is_terminal():
                try:
                    s.apply_action(candidates[int(rand() * len(candidates))])
                except IllegalActionError:
                    candidates = s.legal_actions()
            total += s.returns()[player]
        return total / self.rollouts

    def evaluate(self, states: Sequence[GameState]) -> tuple[np.ndarray, np.ndarray]:
        num_actions = _num_actions(states)
        values = np.array([self.rollout_value(s) for s in states], np.float32)
        if num_actions == 0:
            return np.zeros((0, 0), np.float32), values
        return np.full((len(states), num_actions), 1.0 / num_actions, np.float32), values
