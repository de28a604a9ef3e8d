"""The uniform game-state API every board game implements (after OpenSpiel's `State`).

One API means one MCTS, one PettingZoo adapter and one set of conformance tests serve
every game. Players are 0 (moves first) and 1. Actions are ints in [0, num_actions).
"""

from __future__ import annotations

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


TERMINAL = -1


class MoveStrings:
    """What every game's state shares: `from_moves` / `to_moves` in the position-file convention
    (one 1-based action digit per move: "4453" in connect four, "519" in tic-tac-toe) and the
    accessors over `_moves` (actions played) and `_outcome` (-1 ongoing, 0/1 winner, 2 draw)."""

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
        return self._moves[:]

    def num_moves(self) -> int:
        return len(self._moves)
