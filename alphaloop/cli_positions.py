"""`alphaloop positions`: solver-labelled connect-four position sets, and `alphaloop compare`: two runs'
good-move rate and Elo on the same axes.

A set is written in Pascal Pons' test-file format (`<moves> <score>` per line, see
`alphaloop/games/positions.py`) plus a `<file>.move-scores` sidecar holding every column's score,
which is what rating a chosen move needs (`alphaloop/evals/positions.py`). Both are computed by the
bitbully solver; the sidecar makes later evaluations solver-free.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alphaloop.errors import UserError

console = Console(stderr=True)


def positions_command(game: str, kind: str, count: int, seed: int, out: Path, move_scores: bool = True,
                      show_progress: bool = True) -> dict[str, float]:
    """Generate `count` positions of `kind` from `seed` into `out` (+ sidecar); returns the timings."""
    from alphaloop.games.positions import (
        KINDS,
        generate_positions,
        label_moves,
        move_scores_path,
        save_move_scores,
        save_positions,
    )
    from alphaloop.games.solver import bitbully_available

    if game != "connect4":
        raise UserError(f"GAME {game!r}: solver-labelled position sets exist for connect4 only")
    if kind not in KINDS:
        raise UserError(f"--kind {kind!r}: expected one of {', '.join(KINDS)}")
    if count < 1:
        raise UserError(f"--count: expected an int >= 1, got {count}")
    if not bitbully_available():
        raise UserError("generating positions needs the connect-four solver: pip install bitbully "
                        "(or pip install 'alphaloop[solver]')")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory; expected a file path")
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress) as progress:
        task = progress.add_task(f"{kind}: generating", total=count)
        began = time.perf_counter()
        try:
            items = generate_positions(kind, count, seed=seed,
                                       progress=lambda k: progress.update(task, completed=k))
        except RuntimeError as exc:  # the kind's ranges could not be met in the allowed tries
            raise UserError(f"--kind {kind} --count {count}: {exc}") from None
        timings = {"generate_s": time.perf_counter() - began}
        save_positions(out, items)
        if move_scores:
            task = progress.add_task(f"{kind}: scoring every move", total=count)
            began = time.perf_counter()
            scores = label_moves(items, progress=lambda k: progress.update(task, completed=k))
            timings["move_scores_s"] = time.perf_counter() - began
            save_move_scores(move_scores_path(out), [(m, s) for (m, _), s in zip(items, scores)])
    sidecar = f" and every column's score to {move_scores_path(out)}" if move_scores else ""
    spent = ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.1f} s" for k, v in timings.items())
    console.print(f"wrote {count} {kind} positions to {out}{sidecar} ({spent})")
    return timings


def compare_command(run_a: Path, run_b: Path, out: Path) -> Path:
    from alphaloop.report.games import compare_runs

    page = compare_runs(run_a, run_b, out)
    console.print(f"comparison: {page} (plot: {page.with_suffix('.png')})")
    return page
