"""Connect-four position sets in Pascal Pons' test-file format, and move-quality rates.

File format (Pons' Test_L*_R* benchmark files): one position per line, `<moves> <score>`,
moves as 1-based column digits from the empty board, score in Pons' convention (see
`solver.py`: positive = the player to move wins, 22 - stones of the winner).

Pons names his sets by two ranges (blog.gamesolver.org, "Solving Connect 4", part 2):
"L" = number of moves already played, "R" = number of moves remaining until the end of
the game under perfect play:

    set          name            played moves n      remaining moves r
    Test_L3_R1   End-Easy        28 < n              r < 14
    Test_L2_R1   Middle-Easy     14 < n <= 28        r < 14
    Test_L2_R2   Middle-Medium   14 < n <= 28        14 <= r < 28
    Test_L1_R1   Begin-Easy      n <= 14             r < 14
    Test_L1_R2   Begin-Medium    n <= 14             14 <= r < 28
    Test_L1_R3   Begin-Hard      n <= 14             28 <= r

Our kinds mirror them: `endgame` = L3_R1, `middle-soon` = L2_R1, `middle-late` = L2_R2,
`opening` = L1 with any r (all of L1_R1..R3). Positions are reached by random play
(uniform over the moves that do not end the game), are never terminal, and, as in Pons'
files (every line we checked), the player to move has no immediate win. n >= 1 (the empty
board is not a test position).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from alphaloop.games.connect4 import COLS, Connect4State


@dataclass(frozen=True)
class Kind:
    """Inclusive ranges of played moves n and remaining moves r under perfect play."""

    moves: tuple[int, int]
    remaining: tuple[int, int]
    pons_name: str


KINDS: dict[str, Kind] = {
    "endgame": Kind((29, 41), (0, 13), "Test_L3_R1"),
    "middle-soon": Kind((15, 28), (0, 13), "Test_L2_R1"),
    "middle-late": Kind((15, 28), (14, 27), "Test_L2_R2"),
    "opening": Kind((1, 14), (0, 41), "Test_L1_R1..R3"),
}


# ---- files ---------------------------------------------------------------------------------
def load_positions(path: str | Path) -> list[tuple[str, int]]:
    """Read a Pons-format file into [(moves, score)]; blank lines and '#' comments skipped."""
    items = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit() or not parts[1].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<moves> <score>' (digits, int), got {line!r}")
        items.append((parts[0], int(parts[1])))
    return items


def save_positions(path: str | Path, items: Iterable[tuple[str, int]]) -> None:
    """Write [(moves, score)] as a Pons-format file (one `<moves> <score>` per line)."""
    lines = []
    for moves, score in items:
        if not moves.isdigit():
            raise ValueError(f"moves must be 1-based column digits, got {moves!r}")
        lines.append(f"{moves} {int(score)}\n")
    Path(path).write_text("".join(lines))


# ---- generation ----------------------------------------------------------------------------
def _random_walk(n: int, rng: random.Random) -> Connect4State | None:
    """`n` random moves avoiding moves that end the game; None if cornered into one."""
    state = Connect4State()
    for _ in range(n):
        moves = [c for c in state.legal_actions() if not state.is_winning_move(c)]
        if not moves:
            return None
        state.apply_action(rng.choice(moves))
        if state.is_terminal():
            return None                          # only a draw by a full board can get here
    return state


def matches(kind: str, moves: str, score: int) -> bool:
    """True iff the position `moves` with Pons score `score` satisfies the kind's definition."""
    from alphaloop.games.solver import remaining_moves

    spec = _kind(kind)
    state = Connect4State.from_moves(moves)
    n = state.num_moves()
    r = remaining_moves(score, n)
    return (
        not state.is_terminal()
        and not state.can_win_next()
        and spec.moves[0] <= n <= spec.moves[1]
        and spec.remaining[0] <= r <= spec.remaining[1]
    )


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return KINDS[kind]


def generate_positions(kind: str, n: int, seed: int = 0, max_tries: int = 200_000,
                       progress: Callable[[int], None] | None = None) -> list[tuple[str, int]]:
    """`n` distinct random positions of `kind`, labelled by the solver (needs bitbully).

    The number of played moves is drawn uniformly from the kind's range, the position is
    reached by random play, rejected if the player to move can win at once, then solved
    and kept only if its remaining-moves count falls in the kind's range. `progress(k)` is
    called with the number of positions found so far each time one is kept."""
    from alphaloop.games.solver import remaining_moves, solve

    spec = _kind(kind)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    for _ in range(max_tries):
        if len(out) >= n:
            break
        state = _random_walk(rng.randint(*spec.moves), rng)
        if state is None or state.can_win_next():
            continue
        moves = state.to_moves()
        if moves in seen:
            continue
        seen.add(moves)
        score = solve(state)
        r = remaining_moves(score, state.num_moves())
        if spec.remaining[0] <= r <= spec.remaining[1]:
            out.append((moves, score))
            if progress is not None:
                progress(len(out))
    if len(out) < n:
        raise RuntimeError(f"found only {len(out)} of {n} {kind!r} positions in {max_tries} tries")
    return out


# ---- per-move scores (a sidecar file) -------------------------------------------------------
# Judging a chosen move needs the score of every column, seven solver calls per position (tens of
# milliseconds for an opening position). They never change, so they are computed once and kept
# next to the position file, one line per position in the same order:
#     <moves> <score of column 1> ... <score of column 7>      ("-" for a full column)
MoveScores = list[int | None]


def move_scores_path(path: str | Path) -> Path:
    """The sidecar of a position file: `<file>.move-scores`."""
    path = Path(path)
    return path.with_name(path.name + ".move-scores")


def save_move_scores(path: str | Path, rows: Iterable[tuple[str, MoveScores]]) -> None:
    """Write [(moves, per-column scores)] in the sidecar format (see above)."""
    lines = []
    for moves, scores in rows:
        if len(scores) != COLS:
            raise ValueError(f"scores must hold {COLS} entries (one per column), got {scores!r} for {moves!r}")
        lines.append(" ".join([moves, *("-" if s is None else str(int(s)) for s in scores)]) + "\n")
    Path(path).write_text("".join(lines))


def load_move_scores(path: str | Path) -> list[tuple[str, MoveScores]]:
    """Read a sidecar written by `save_move_scores`."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        ok = len(parts) == COLS + 1 and parts[0].isdigit() and all(
            p == "-" or p.lstrip("-").isdigit() for p in parts[1:])
        if not ok:
            raise ValueError(f"{path}:{lineno}: expected '<moves>' and {COLS} scores ('-' for a full column), "
                             f"got {line!r}")
        rows.append((parts[0], [None if p == "-" else int(p) for p in parts[1:]]))
    return rows


def label_moves(items: Iterable[tuple[str, int]],
                progress: Callable[[int], None] | None = None) -> list[MoveScores]:
    """Every column's solver score for each position (needs bitbully); `progress(k)` after each."""
    from alphaloop.games.solver import move_scores

    out = []
    for moves, _ in items:
        out.append(move_scores(moves))
        if progress is not None:
            progress(len(out))
    return out


# ---- move quality --------------------------------------------------------------------------
def _best(scores: list[int | None], move: int) -> int:
    if not 0 <= move < len(scores) or scores[move] is None:
        raise ValueError(f"move {move} is not legal here (scores {scores})")
    return max(s for s in scores if s is not None)


def is_perfect_move(scores: list[int | None], move: int) -> bool:
    """The move reaches the best score (the fastest win / slowest loss)."""
    return scores[move] == _best(scores, move)


def is_good_move(scores: list[int | None], move: int) -> bool:
    """The move keeps the game-theoretic outcome: same sign as the best score (a win stays
    a win, a draw a draw; in a lost position every move is good)."""
    best = _best(scores, move)
    s = scores[move]
    assert s is not None
    return (s > 0) - (s < 0) == (best > 0) - (best < 0)


def move_quality(scores: Iterable[MoveScores], moves: Iterable[int]) -> dict[str, float | int]:
    """Perfect- and good-move rates of the chosen `moves` (0-based columns), one per position,
    judged by each position's per-column `scores`: {"good_move_rate", "perfect_move_rate", "n"}."""
    perfect = good = total = 0
    for row, move in zip(scores, moves, strict=True):
        perfect += is_perfect_move(row, move)
        good += is_good_move(row, move)
        total += 1
    if total == 0:
        raise ValueError("need at least one position to rate moves")
    return {"good_move_rate": good / total, "perfect_move_rate": perfect / total, "n": total}


def good_move_rate(
    items: Iterable[tuple[str, int]], choose: Callable[[Connect4State], int]
) -> dict[str, float | int]:
    """`move_quality` of `choose(state)` on each position, scored by the solver (needs bitbully)."""
    items = list(items)
    states = [Connect4State.from_moves(moves) for moves, _ in items]
    return move_quality(label_moves(items), [choose(state.clone()) for state in states])
