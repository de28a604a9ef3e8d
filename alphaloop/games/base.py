"""The uniform game-state API every board game implements (after OpenSpiel's `State`).

One API means one MCTS, one PettingZoo adapter and one set of conformance tests serve
every game. Players are 0 (moves first) and 1. Actions are ints in [0, num_actions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import numpy as np


class IllegalActionError(ValueError):
    """Raised by `apply_action` for an action that is not legal in the state."""


class GameState(Protocol):
    game_name: ClassVar[str]
    num_actions: ClassVar[int]           # size of the action space (9 for tic-tac-toe, 7 for connect four)
    observation_shape: ClassVar[tuple[int, ...]]  # shape of `observation_tensor()`

    def legal_actions(self) -> list[int]:
        """Legal actions in increasing order; empty iff the state is terminal."""

    def apply_action(self, action: int) -> None:
        """Play `action` for the current player in place; IllegalActionError if not legal."""

    def clone(self) -> GameState:
        """An independent copy: changing it never changes self."""

    def is_terminal(self) -> bool: ...

    def returns(self) -> list[float]:
        """[r0, r1] in {-1, 0, 1}: zero for non-terminal states and draws."""

    def current_player(self) -> int:
        """0 or 1 to move; -1 (TERMINAL) when the game is over."""

    def observation_tensor(self) -> np.ndarray:
        """float32 planes from the point of view of the player to move (current player's
        stones first, then the opponent's), shape `observation_shape`."""

    def move_history(self) -> list[int]: ...

    def __str__(self) -> str:
        """Human-readable board."""

    # Optional, vectorised over many states of one game (a search evaluates thousands of leaves per
    # call, and one numpy pass over their bitboards is far cheaper than a Python loop per board);
    # `observations` and `legal_masks` below use them when the class has them:
    #   @classmethod observation_batch(states) -> float32[B, *observation_shape]
    #   @classmethod legal_mask_batch(states) -> bool[B, num_actions]


TERMINAL = -1


def observations(states: Sequence[GameState]) -> np.ndarray:
    """float32[B, *observation_shape]: each state's `observation_tensor()`, stacked (through the game's
    vectorised `observation_batch` when it has one). The states must all be of one game."""
    if len(states) == 0:
        raise ValueError("states: expected at least one state")
    batch = getattr(type(states[0]), "observation_batch", None)
    if batch is not None:
        return batch(states)
    return np.stack([np.asarray(s.observation_tensor(), np.float32) for s in states])


def legal_masks(states: Sequence[GameState], num_actions: int) -> np.ndarray:
    """bool[B, num_actions], True where the action is legal (through the game's vectorised
    `legal_mask_batch` when it has one). The states must all be of one game."""
    if len(states) == 0:
        return np.zeros((0, num_actions), bool)
    batch = getattr(type(states[0]), "legal_mask_batch", None)
    if batch is not None and states[0].num_actions == num_actions:
        return batch(states)
    mask = np.zeros((len(states), num_actions), dtype=bool)
    for row, state in enumerate(states):
        mask[row, state.legal_actions()] = True
    return mask


class MoveStrings:
    """What every game's state shares: `from_moves` / `to_moves` in the position-file convention
    (one 1-based action digit per move: "4453" in connect four, "519" in tic-tac-toe) and the
    accessors over `_moves` (actions played) and `_outcome` (-1 ongoing, 0/1 winner, 2 draw).

    `_moves` is a `bytes` string (one byte per action, so actions must be < 256): immutable, so a
    clone shares it instead of copying a list, and not tracked by the garbage collector -- a
    search creates one state per tree node, hundreds of thousands per self-play batch."""

    __slots__ = ()
    move_noun: ClassVar[str] = "action"

    @classmethod
    def from_moves(cls, moves: str):
        """Build a state by playing the moves; IllegalActionError on a bad digit or move."""
        top = cls.num_actions
        if not isinstance(moves, str):
            raise TypeError(f"moves must be a str of digits 1..{top}, got {type(moves).__name__}")
        state = cls()
        for i, ch in enumerate(moves.strip()):
            if not ("1" <= ch <= str(top)):
                raise IllegalActionError(f"moves[{i}]={ch!r}: expected a {cls.move_noun} digit 1..{top} in {moves!r}")
            state.apply_action(int(ch) - 1)
        return state

    def to_moves(self) -> str:
        """The inverse of `from_moves`: 1-based digits of the moves played so far."""
        return "".join(str(a + 1) for a in self._moves)

    def returns(self) -> list[float]:
        if self._outcome in (0, 1):
            return [1.0, -1.0] if self._outcome == 0 else [-1.0, 1.0]
        return [0.0, 0.0]

    def winner(self) -> int | None:
        """0 or 1 if that player has won, else None (ongoing or draw)."""
        return self._outcome if self._outcome in (0, 1) else None

    def move_history(self) -> list[int]:
        return list(self._moves)

    def num_moves(self) -> int:
        return len(self._moves)
