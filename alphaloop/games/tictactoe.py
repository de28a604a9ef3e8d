"""Tic-tac-toe on two 9-bit bitboards.

Cells are numbered 0..8 row-major (action = cell). Player 0 plays X and moves first.
The state keeps one bitmask per player, so a win test is eight `mask & line == line`
checks and `legal_actions` is a scan of the free bits: MCTS rollouts call these millions
of times, hence `__slots__` and no numpy in them. `observation_batch` / `legal_mask_batch`
do many states at once with numpy shifts of the two masks.

Position-file convention (`from_moves` / `to_moves`): one 1-based cell digit per move,
e.g. "519" = X centre, O top-left, X bottom-right.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alphaloop.games.base import TERMINAL, IllegalActionError, MoveStrings

ROWS, COLS = 3, 3
FULL = (1 << 9) - 1
# The eight winning lines as bitmasks (3 rows, 3 columns, 2 diagonals).
LINES: tuple[int, ...] = tuple(
    sum(1 << c for c in cells)
    for cells in (
        (0, 1, 2), (3, 4, 5), (6, 7, 8),
        (0, 3, 6), (1, 4, 7), (2, 5, 8),
        (0, 4, 8), (2, 4, 6),
    )
)
_NO_WINNER, _DRAW = -1, 2
_ACTION_BYTES = tuple(bytes((c,)) for c in range(9))
_CELLS = np.arange(9, dtype=np.int64)
_LEGAL = tuple(tuple(c for c in range(9) if not occupied >> c & 1) for occupied in range(FULL + 1))


def _has_line(mask: int) -> bool:
    for line in LINES:
        if mask & line == line:
            return True
    return False


class TicTacToeState(MoveStrings):
    """A tic-tac-toe position; mutable, copy with `clone()`."""

    game_name: ClassVar[str] = "tictactoe"
    num_actions: ClassVar[int] = 9
    observation_shape: ClassVar[tuple[int, ...]] = (3, ROWS, COLS)

    __slots__ = ("_masks", "_moves", "_outcome")
    move_noun: ClassVar[str] = "cell"

    def __init__(self) -> None:
        self._masks = (0, 0)            # stones of player 0 (X) and player 1 (O); a tuple, shared by clones
        self._moves = b""              # one byte per cell played (see MoveStrings)
        self._outcome = _NO_WINNER      # -1 ongoing, 0/1 winner, 2 draw

    # ---- construction -------------------------------------------------------------------
    def clone(self) -> TicTacToeState:
        other = TicTacToeState.__new__(TicTacToeState)
        other._masks = self._masks
        other._moves = self._moves      # immutable bytes: shared, not copied
        other._outcome = self._outcome
        return other

    # ---- game API -----------------------------------------------------------------------
    def current_player(self) -> int:
        return TERMINAL if self._outcome != _NO_WINNER else len(self._moves) & 1

    def is_terminal(self) -> bool:
        return self._outcome != _NO_WINNER

    def legal_actions(self) -> list[int]:
        if self._outcome != _NO_WINNER:
            return []
        return list(_LEGAL[self._masks[0] | self._masks[1]])

    def apply_action(self, action: int) -> None:
        if action.__class__ is not int:          # the common case first: a plain int needs no conversion
            if not isinstance(action, np.integer):
                raise IllegalActionError(f"tictactoe: action {action!r} out of range: expected a cell 0..8")
            action = int(action)
        if self._outcome != _NO_WINNER:
            raise IllegalActionError(f"tictactoe: action {action}: the game is over ({self.to_moves()!r})")
        if not 0 <= action < 9:
            raise IllegalActionError(f"tictactoe: action {action!r} out of range: expected a cell 0..8")
        bit = 1 << action
        if (self._masks[0] | self._masks[1]) & bit:
            raise IllegalActionError(f"tictactoe: cell {action} (1-based {action + 1}) is already taken")
        player = len(self._moves) & 1
        mask = self._masks[player] | bit
        self._masks = (mask, self._masks[1]) if player == 0 else (self._masks[0], mask)
        self._moves += _ACTION_BYTES[action]
        if _has_line(mask):
            self._outcome = player
        elif len(self._moves) == 9:
            self._outcome = _DRAW

    def key(self) -> tuple[int, int]:
        """A hashable key of the position (the two masks), for transposition tables."""
        return (self._masks[0], self._masks[1])

    def observation_tensor(self) -> np.ndarray:
        """Planes: stones of the player to move, opponent's stones, all-ones iff player 0 to move."""
        me = len(self._moves) & 1
        obs = np.zeros(self.observation_shape, dtype=np.float32)
        for c in range(9):
            bit = 1 << c
            if self._masks[me] & bit:
                obs[0, c // 3, c % 3] = 1.0
            elif self._masks[1 - me] & bit:
                obs[1, c // 3, c % 3] = 1.0
        if me == 0:
            obs[2] = 1.0
        return obs

    @classmethod
    def observation_batch(cls, states) -> np.ndarray:
        """`observation_tensor()` of every state at once: float32[B, 3, 3, 3] by shifting each cell's
        bit out of the two masks (one numpy pass instead of a Python loop per board)."""
        mine = np.array([s._masks[len(s._moves) & 1] for s in states], np.int64)[:, None]
        theirs = np.array([s._masks[~len(s._moves) & 1] for s in states], np.int64)[:, None]
        first = np.array([not len(s._moves) & 1 for s in states], np.float32)   # player 0 to move
        obs = np.empty((len(states), 3, 9), np.float32)
        obs[:, 0] = (mine >> _CELLS) & 1
        obs[:, 1] = (theirs >> _CELLS) & 1
        obs[:, 2] = first[:, None]
        return obs.reshape(-1, 3, ROWS, COLS)

    @classmethod
    def legal_mask_batch(cls, states) -> np.ndarray:
        """bool[B, 9]: a cell is legal iff the game goes on and neither player holds it."""
        taken = np.array([s._masks[0] | s._masks[1] if s._outcome == _NO_WINNER else FULL for s in states], np.int64)
        return ((taken[:, None] >> _CELLS) & 1) == 0

    def __str__(self) -> str:
        rows = []
        for r in range(3):
            cells = []
            for c in range(3):
                bit = 1 << (3 * r + c)
                cells.append("X" if self._masks[0] & bit else "O" if self._masks[1] & bit else ".")
            rows.append(" ".join(cells))
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"TicTacToeState.from_moves({self.to_moves()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TicTacToeState) and self._masks == other._masks

    def __hash__(self) -> int:
        return hash(self.key())


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0..7) symmetry of the square on the last two axes: k%4 quarter turns, then a
    left-right flip if k >= 4."""
    out = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        out = np.flip(out, axis=-1)
    return np.ascontiguousarray(out)


def symmetries(obs: np.ndarray, policy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 8 dihedral images of a (obs, policy) pair, identity first.

    The board and the 3x3-reshaped policy go through the same transform, so policy mass
    stays on the image of the cell it was on (tested by transforming a state's moves).
    """
    obs = np.asarray(obs)
    policy = np.asarray(policy)
    if obs.shape[-2:] != (ROWS, COLS):
        raise ValueError(f"obs must end in shape (3, 3), got {obs.shape}")
    if policy.shape != (9,):
        raise ValueError(f"policy must have shape (9,), got {policy.shape}")
    grid = policy.reshape(ROWS, COLS)
    return [(_dihedral(obs, k), _dihedral(grid, k).reshape(9)) for k in range(8)]


def transform_action(action: int, k: int) -> int:
    """Where cell `action` goes under the k-th symmetry of `symmetries` (for tests and tools)."""
    onehot = np.zeros(9, dtype=np.float32)
    onehot[action] = 1.0
    return int(np.argmax(_dihedral(onehot.reshape(3, 3), k).reshape(9)))
