"""Connect four (6 rows x 7 columns) on bitboards in Python ints, in Pascal Pons' layout.

Layout (Pons, "Solving Connect 4: how to build a perfect AI", blog.gamesolver.org): bit
`7 * col + row` is the cell in column `col` (0..6, left to right) and row `row` (0..5, bottom
up); bit 6 of each column is an always-empty sentinel so shifted lines never wrap between
columns. A position is two ints:

    position = stones of the player to move,   mask = all stones.

Playing column c is `position ^= mask; mask |= mask + bottom(c)` (the addition drops a
stone on top of the column) and the four-in-a-row test of a bitboard `p` is, for each
direction shift s in {1 (vertical), 7 (horizontal), 6 (diagonal \\), 8 (diagonal /)}:

    m = p & (p >> s);  win iff m & (m >> 2s) != 0.

MCTS rollouts call `apply_action` / `legal_actions` millions of times, hence `__slots__`
and no numpy in them. Searches that evaluate thousands of leaves at once use the
vectorised `observation_batch` / `legal_mask_batch`, which read every state's two
bitboards into one int64 array and expand the bits with numpy shifts.

Position-file convention (`from_moves` / `to_moves`, as in Pons' test sets): one 1-based
column digit per move, e.g. "4453".
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alphaloop.games.base import TERMINAL, IllegalActionError, MoveStrings

ROWS, COLS = 6, 7
H1 = ROWS + 1                                    # bits per column, sentinel included
BOTTOM = tuple(1 << (H1 * c) for c in range(COLS))
TOP = tuple(1 << (ROWS - 1 + H1 * c) for c in range(COLS))
COLUMN = tuple(((1 << ROWS) - 1) << (H1 * c) for c in range(COLS))
BOTTOM_ROW = sum(BOTTOM)
BOARD = BOTTOM_ROW * ((1 << ROWS) - 1)           # all 42 playable cells
MAX_MOVES = ROWS * COLS
_NO_WINNER, _DRAW = -1, 2
_ACTION_BYTES = tuple(bytes((c,)) for c in range(COLS))
# Bit of each observation cell: row 0 of the planes is the top row, as `__str__` prints it.
_CELL_BITS = np.array([[H1 * c + (ROWS - 1 - r) for c in range(COLS)] for r in range(ROWS)], np.int64)
_TOP_BITS = np.array(TOP, np.int64)
ALL_TOP = sum(TOP)
# legal columns for every pattern of full columns (keyed by `mask & ALL_TOP`): one dict lookup per call
_LEGAL = {sum(TOP[c] for c in range(COLS) if full >> c & 1): tuple(c for c in range(COLS) if not full >> c & 1)
          for full in range(1 << COLS)}


def has_four(p: int) -> bool:
    """True iff bitboard `p` holds four in a row in any of the four directions."""
    m = p & (p >> H1)                            # horizontal
    if m & (m >> 2 * H1):
        return True
    m = p & (p >> (H1 - 1))                      # diagonal \
    if m & (m >> 2 * (H1 - 1)):
        return True
    m = p & (p >> (H1 + 1))                      # diagonal /
    if m & (m >> 2 * (H1 + 1)):
        return True
    m = p & (p >> 1)                             # vertical
    return bool(m & (m >> 2))


def winning_cells(position: int, mask: int) -> int:
    """Empty cells that would complete four for the owner of `position` (Pons'
    `compute_winning_position`): a bitboard, not restricted to playable cells."""
    p = position
    r = (p << 1) & (p << 2) & (p << 3)           # vertical: three below
    for s in (H1, H1 - 1, H1 + 1):
        t = (p << s) & (p << 2 * s)
        r |= t & (p << 3 * s)                    # three to one side
        r |= t & (p >> s)                        # two + one across the gap
        t = (p >> s) & (p >> 2 * s)
        r |= t & (p << s)
        r |= t & (p >> 3 * s)
    return r & (BOARD ^ mask)


class Connect4State(MoveStrings):
    """A connect-four position; mutable, copy with `clone()`."""

    game_name: ClassVar[str] = "connect4"
    num_actions: ClassVar[int] = COLS
    observation_shape: ClassVar[tuple[int, ...]] = (3, ROWS, COLS)

    __slots__ = ("_position", "_mask", "_moves", "_outcome")
    move_noun: ClassVar[str] = "column"

    def __init__(self) -> None:
        self._position = 0                       # stones of the player to move
        self._mask = 0                           # all stones
        self._moves = b""                        # one byte per column played (see MoveStrings)
        self._outcome = _NO_WINNER               # -1 ongoing, 0/1 winner, 2 draw

    # ---- construction -------------------------------------------------------------------
    def clone(self) -> Connect4State:
        other = Connect4State.__new__(Connect4State)
        other._position = self._position
        other._mask = self._mask
        other._moves = self._moves                # immutable bytes: shared, not copied
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
        return list(_LEGAL[self._mask & ALL_TOP])

    def apply_action(self, action: int) -> None:
        if action.__class__ is not int:          # the common case first: a plain int needs no conversion
            if not isinstance(action, np.integer):
                raise IllegalActionError(f"connect4: action {action!r} out of range: expected a column 0..6")
            action = int(action)
        if self._outcome != _NO_WINNER:
            raise IllegalActionError(f"connect4: action {action}: the game is over ({self.to_moves()!r})")
        if not 0 <= action < COLS:
            raise IllegalActionError(f"connect4: action {action!r} out of range: expected a column 0..6")
        mask = self._mask
        if mask & TOP[action]:
            raise IllegalActionError(f"connect4: column {action} (1-based {action + 1}) is full")
        self._position ^= mask                   # now: stones of the next player to move
        mask |= mask + BOTTOM[action]
        self._mask = mask
        self._moves += _ACTION_BYTES[action]
        if has_four(self._position ^ mask):      # stones of the player who just moved
            self._outcome = (len(self._moves) - 1) & 1
        elif len(self._moves) == MAX_MOVES:
            self._outcome = _DRAW

    # ---- bitboard access for searchers --------------------------------------------------
    def bitboards(self) -> tuple[int, int]:
        """(position, mask) in Pons' layout: stones of the player to move, all stones."""
        return self._position, self._mask

    def key(self) -> int:
        """Pons' unique position key `position + mask` (fits in 49 bits)."""
        return self._position + self._mask

    def is_winning_move(self, action: int) -> bool:
        """True iff playing legal column `action` makes four in a row for the player to move."""
        mask = self._mask
        return has_four(self._position | ((mask + BOTTOM[action]) & COLUMN[action]))

    def can_win_next(self) -> bool:
        """True iff the player to move has a move that wins at once (Pons' test sets exclude these)."""
        possible = (self._mask + BOTTOM_ROW) & BOARD
        return bool(winning_cells(self._position, self._mask) & possible)

    def observation_tensor(self) -> np.ndarray:
        """Planes (row 0 = top, as printed): stones of the player to move, opponent's stones,
        all-ones iff player 0 is to move."""
        me, mask = self._position, self._mask
        obs = np.zeros(self.observation_shape, dtype=np.float32)
        for c in range(COLS):
            for r in range(ROWS):
                bit = 1 << (H1 * c + r)
                if not mask & bit:
                    break
                obs[0 if me & bit else 1, ROWS - 1 - r, c] = 1.0
        if not len(self._moves) & 1:
            obs[2] = 1.0
        return obs

    @classmethod
    def observation_batch(cls, states) -> np.ndarray:
        """`observation_tensor()` of every state at once: float32[B, 3, 6, 7] from the bitboards by
        shifting each cell's bit into place (one numpy pass instead of a Python loop per board)."""
        me = np.array([s._position for s in states], np.int64)[:, None, None]
        mask = np.array([s._mask for s in states], np.int64)[:, None, None]
        first = np.array([not len(s._moves) & 1 for s in states], np.float32)   # player 0 to move
        obs = np.empty((len(states), 3, ROWS, COLS), np.float32)
        obs[:, 0] = (me >> _CELL_BITS) & 1
        obs[:, 1] = ((me ^ mask) >> _CELL_BITS) & 1
        obs[:, 2] = first[:, None, None]
        return obs

    @classmethod
    def legal_mask_batch(cls, states) -> np.ndarray:
        """bool[B, 7]: column c is legal in state b iff the game goes on and c's top cell is empty."""
        full = np.array([s._mask if s._outcome == _NO_WINNER else ALL_TOP for s in states], np.int64)
        return (full[:, None] & _TOP_BITS) == 0

    def __str__(self) -> str:
        p0 = self._position if not len(self._moves) & 1 else self._position ^ self._mask
        lines = []
        for r in range(ROWS - 1, -1, -1):
            cells = []
            for c in range(COLS):
                bit = 1 << (H1 * c + r)
                cells.append("." if not self._mask & bit else "X" if p0 & bit else "O")
            lines.append(" ".join(cells))
        lines.append(" ".join(str(c + 1) for c in range(COLS)))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Connect4State.from_moves({self.to_moves()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connect4State) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())


def symmetries(obs: np.ndarray, policy: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Identity and the left-right mirror (the only symmetries of connect four: gravity
    rules out the others). Column c maps to 6 - c in both the board and the policy."""
    obs = np.asarray(obs)
    policy = np.asarray(policy)
    if obs.shape[-2:] != (ROWS, COLS):
        raise ValueError(f"obs must end in shape (6, 7), got {obs.shape}")
    if policy.shape != (COLS,):
        raise ValueError(f"policy must have shape (7,), got {policy.shape}")
    return [(obs, policy), (np.ascontiguousarray(obs[..., ::-1]), np.ascontiguousarray(policy[::-1]))]
