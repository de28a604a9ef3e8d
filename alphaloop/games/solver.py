"""Perfect connect-four play via the `bitbully` solver (an optional dependency).

Scores follow Pascal Pons' convention ("Solving Connect 4", blog.gamesolver.org, part 2,
and his Test_L*_R* files): the score of a non-terminal position is from the point of view
of the player to move, assuming both sides play perfectly, the winner winning as soon as
possible and the loser losing as late as possible:

    score = +(22 - s)  if the player to move wins with their s-th stone,
    score = -(22 - s)  if the opponent wins with their s-th stone,
    score = 0          for a draw.

Equivalently, a win on the move after `n` stones have been played scores `(43 - n) // 2`:
"121212" (n = 6, the player to move completes column 1) scores (43 - 6) // 2 = 18, and
"4455" also scores 18 (the side to move wins with its 4th stone two moves later).
After the best move the opponent's score is the negation of ours, so the score of
column c is `-solve(position + c)` (or the immediate-win value when c wins at once).

bitbully (github.com/MarkusThill/BitBully) returns exactly these numbers; the tests check
it on the first lines of Pons' Test_L3_R1 set and on hand-verified positions. It loads
its 12-ply opening book with distances on first use (~0.3 s), after which opening
positions solve in milliseconds.
"""

from __future__ import annotations

from typing import Any

from alphaloop.games.connect4 import COLS, Connect4State

_AGENT: Any = None


def bitbully_available() -> bool:
    """True iff the optional `bitbully` package can be imported."""
    try:
        import bitbully  # noqa: F401
    except ImportError:
        return False
    return True


def _agent() -> Any:
    """The shared BitBully engine, created on first use (keeps its transposition table)."""
    global _AGENT
    if _AGENT is None:
        try:
            import bitbully
        except ImportError as exc:
            raise ImportError(
                "the connect-four solver needs the optional `bitbully` package: "
                "pip install bitbully (or pip install 'alphaloop[solver]')"
            ) from exc
        _AGENT = bitbully.BitBully(opening_book="default")
    return _AGENT


def reset_cache() -> None:
    """Clear the engine's transposition table (for fair timings; results never change)."""
    if _AGENT is not None:
        _AGENT.reset_transposition_table()


def _as_state(state: Connect4State | str) -> Connect4State:
    if isinstance(state, str):
        state = Connect4State.from_moves(state)
    if not isinstance(state, Connect4State):
        raise TypeError(f"state must be a Connect4State or a move string, got {type(state).__name__}")
    if state.is_terminal():
        raise ValueError(f"state must be non-terminal to be scored, got a finished game {state.to_moves()!r}")
    return state


def _board(state: Connect4State) -> Any:
    import bitbully

    # bitbully's move strings are 0-based columns.
    return bitbully.Board("".join(str(a) for a in state.move_history()))


def solve(state: Connect4State | str) -> int:
    """Pons score of a non-terminal position (a state or a 1-based move string)."""
    state = _as_state(state)
    agent = _agent()
    return int(agent.mtdf(_board(state)))


def move_scores(state: Connect4State | str) -> list[int | None]:
    """Pons score of each column for the player to move (None for full columns).

    The score of column c is the score the mover secures by playing c: max over columns
    equals `solve(state)`.
    """
    state = _as_state(state)
    scores = _agent().score_all_moves(_board(state))
    return [int(scores[c]) if c in scores else None for c in range(COLS)]


def best_moves(state: Connect4State | str) -> list[int]:
    """All columns with the maximal score (the perfect moves)."""
    scores = move_scores(state)
    best = max(s for s in scores if s is not None)
    return [c for c, s in enumerate(scores) if s == best]


def remaining_moves(score: int, num_moves: int) -> int:
    """Plies left in the game under perfect play from a position with `num_moves` stones and
    Pons score `score` (the "R" of Pons' test sets). A win with the s-th stone of the winner
    ends the game at ply 2s - 1 (first player) or 2s (second player); a draw at ply 42."""
    if score == 0:
        return 42 - num_moves
    mover_first = num_moves % 2 == 0
    winner_first = mover_first if score > 0 else not mover_first
    stones = 22 - abs(score)                     # the winner's stone count at the end
    last_ply = 2 * stones - 1 if winner_first else 2 * stones
    return last_ply - num_moves


class SolverPlayer:
    """Perfect connect-four player: a random choice among the best-scoring columns."""

    def __init__(self, seed: int = 0) -> None:
        import random

        self._rng = random.Random(seed)

    def choose(self, state: Connect4State) -> int:
        return self._rng.choice(best_moves(state))
