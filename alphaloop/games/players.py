"""Reference players: the yardsticks learned agents are measured against.

`RandomPlayer` is the floor; `PerfectTicTacToe` is the ceiling for tic-tac-toe (the whole
game has 5,478 reachable positions, so a memoised negamax solves it in milliseconds). For
connect four see `alphabeta.AlphaBetaPlayer` (graded strengths) and `solver.SolverPlayer`
(perfect, needs bitbully).
"""

from __future__ import annotations

import random
from typing import Protocol

from alphaloop.games.base import GameState
from alphaloop.games.tictactoe import TicTacToeState


class Player(Protocol):
    def choose(self, state: GameState) -> int:
        """A legal action for the player to move in the non-terminal `state`."""


def _check_playable(state: GameState) -> list[int]:
    legal = state.legal_actions()
    if not legal:
        raise ValueError(f"state must be non-terminal to choose a move, got a finished game:\n{state}")
    return legal


class RandomPlayer:
    """Uniformly random legal moves from its own seeded generator."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def choose(self, state: GameState) -> int:
        return self._rng.choice(_check_playable(state))


# ---- perfect tic-tac-toe -------------------------------------------------------------------
# Negamax (von Neumann's minimax in its symmetric form): score(s) = max_a -score(s·a), with a
# terminal lost position (the previous player just completed a line) scoring
# -(1 + empty cells). The empty-cell term makes faster wins score higher and slower losses
# score less negatively, so the player wins as soon as possible and resists as long as
# possible. Draws score 0. Memoised on the two stone masks: each position is solved once.
_SCORES: dict[tuple[int, int], int] = {}


def _score(state: TicTacToeState) -> int:
    key = state.key()
    cached = _SCORES.get(key)
    if cached is not None:
        return cached
    if state.is_terminal():
        score = -(10 - state.num_moves()) if state.winner() is not None else 0
    else:
        score = -100
        for a in state.legal_actions():
            child = state.clone()
            child.apply_action(a)
            score = max(score, -_score(child))
    _SCORES[key] = score
    return score


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


class PerfectTicTacToe:
    """Optimal tic-tac-toe: a random choice (seeded) among the moves with the best score."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    @staticmethod
    def _check(state: TicTacToeState) -> None:
        if not isinstance(state, TicTacToeState):
            raise TypeError(f"state must be a TicTacToeState, got {type(state).__name__}")

    def score(self, state: TicTacToeState) -> int:
        """Distance-aware negamax score for the player to move (see module comment)."""
        self._check(state)
        return _score(state)

    def value(self, state: TicTacToeState) -> int:
        """Game-theoretic value for the player to move: +1 win, 0 draw, -1 loss. For a
        terminal state, the value for the player who would move next (-1 after a win)."""
        self._check(state)
        return _sign(_score(state))

    def move_scores(self, state: TicTacToeState) -> list[int | None]:
        """Distance-aware score of each action for the mover (None for illegal actions)."""
        self._check(state)
        out: list[int | None] = [None] * TicTacToeState.num_actions
        for a in _check_playable(state):
            child = state.clone()
            child.apply_action(a)
            out[a] = -_score(child)
        return out

    def move_values(self, state: TicTacToeState) -> list[int | None]:
        """Value (+1/0/-1) of each action for the mover (None for illegal actions)."""
        return [None if s is None else _sign(s) for s in self.move_scores(state)]

    def best_moves(self, state: TicTacToeState) -> list[int]:
        scores = self.move_scores(state)
        best = max(s for s in scores if s is not None)
        return [a for a, s in enumerate(scores) if s == best]

    def choose(self, state: TicTacToeState) -> int:
        return self._rng.choice(self.best_moves(state))


def play_game(state: GameState, players: tuple[Player, Player] | list[Player]) -> list[float]:
    """Play `players[0]` (player 0) against `players[1]` from `state` (changed in place) to
    the end; returns `state.returns()`."""
    if len(players) != 2:
        raise ValueError(f"players must hold exactly 2 players, got {len(players)}")
    while not state.is_terminal():
        state.apply_action(players[state.current_player()].choose(state))
    return state.returns()
