"""Board-game progress plots: good-move rate and Elo against self-play games and wall time, for one run
(in its report) or two runs side by side (`alphaloop compare RUN_A RUN_B --out DIR`).

The question these answer is the one AlphaGo's recipe raises: does imitation first (then self-play)
get strong sooner than self-play from zero? Sooner in *compute*, so the x axes are what was spent:
cumulative self-play games, and seconds since the run started (imitation costs time, not games).

Sources: in-training evals in metrics.jsonl (kind "eval", with `selfplay_games` and `time_s`) give
the good-move rates; the game_eval ladder's Elo records in summary.json (split "elo", with the
snapshot's stage and step) give Elo, placed at the time and games of that step's eval. A resumed
run restarts its clock at 0; `run_time` stitches the pieces so time keeps increasing (the work lost
between the last checkpoint and the crash is not counted).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from alphaloop.errors import UserError
from alphaloop.report.plots import img_tag, save_figure
from alphaloop.runlog import read_metrics

X_AXES = (("time_s", "wall time (s)"), ("selfplay_games", "self-play games"))


@dataclass
class Point:
    time_s: float
    selfplay_games: int
    value: float
    low: float | None = None   # interval (Elo only)
    high: float | None = None


@dataclass
class GameProgress:
    """Series of one run: good-move rate per (position set, decoder) and Elo per decoder."""

    name: str
    good: dict[tuple[str, str], list[Point]] = field(default_factory=dict)
    elo: dict[str, list[Point]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not self.good and not self.elo


def run_time(records: list[dict[str, Any]]) -> list[float]:
    """`time_s` of each record made monotone across resumes: when the clock jumps back (a resumed
    process starts at 0), later times are offset by the last time seen before the jump."""
    out, offset, last = [], 0.0, 0.0
    for record in records:
        t = record.get("time_s")
        t = float(t) if isinstance(t, int | float) and not isinstance(t, bool) else math.nan
        if math.isfinite(t) and t + offset < last - 1e-9:
            offset = last
        value = t + offset if math.isfinite(t) else math.nan
        if math.isfinite(value):
            last = value
        out.append(value)
    return out


def accuracy_against_time(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """In-training greedy test accuracy against seconds into each stage, one line per stage: the
    equal-wall-time view of learners compared in one run (rl, expert_iteration, ...). Times come from
    metrics.jsonl (`run_time`), not summary.json, which holds no clock readings so that a resumed run
    gives the same summary. Empty unless at least two stages have two or more such evals."""
    first: dict[int, float] = {}
    points: list[dict[str, Any]] = []
    for record, t in zip(metrics, run_time(metrics)):
        index = record.get("stage_index")
        if not isinstance(index, int) or not math.isfinite(t):
            continue
        first.setdefault(index, t)
        accuracy = record.get("accuracy")
        if (record.get("kind") == "eval" and record.get("split") == "test" and record.get("decoder") == "greedy"
                and isinstance(accuracy, int | float)):
            points.append({"stage": str(record.get("stage")), "stage_seconds": round(t - first[index], 3),
                           "test_greedy_accuracy": float(accuracy)})
    counts: dict[str, int] = {}
    for point in points:
        counts[point["stage"]] = counts.get(point["stage"], 0) + 1
    keep = {stage for stage, n in counts.items() if n >= 2}
    return [p for p in points if p["stage"] in keep] if len(keep) >= 2 else []


def game_progress(name: str, summary: dict[str, Any], metrics: list[dict[str, Any]]) -> GameProgress:
    """Collect the series from a run's summary.json content and metrics.jsonl records."""
    progress = GameProgress(name)
    where: dict[tuple[str, int], tuple[float, int]] = {}  # (stage, step) -> (time, self-play games)
    for record, t in zip(metrics, run_time(metrics)):
        if record.get("kind") != "eval" or not isinstance(record.get("step"), int):
            continue
        games = record.get("selfplay_games")
        if not isinstance(games, int) or not math.isfinite(t):
            continue
        where[(str(record.get("stage")), record["step"])] = (t, games)
        split, rate = str(record.get("split", "")), record.get("good_move_rate")
        if split.startswith("positions-") and isinstance(rate, int | float):
            key = (split.removeprefix("positions-"), str(record.get("decoder", "")))
            progress.good.setdefault(key, []).append(Point(t, games, float(rate)))
    for record in summary.get("evals") or []:
        if not isinstance(record, dict) or record.get("split") != "elo" or record.get("step") is None:
            continue
        m = record.get("metrics") or {}
        at = where.get((str(record.get("stage")), record["step"]))
        if at is None or not isinstance(m.get("elo"), int | float):
            continue
        progress.elo.setdefault(str(record.get("decoder", "")), []).append(
            Point(at[0], at[1], float(m["elo"]), m.get("elo_low"), m.get("elo_high")))
    for series in (*progress.good.values(), *progress.elo.values()):
        series.sort(key=lambda p: (p.time_s, p.selfplay_games))
    return progress


def read_run(run_dir: Path) -> GameProgress:
    """A run directory's series (UserError if it is not a finished-enough run directory)."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} has no summary.json (not a run directory, or no stage has finished)")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None
    return game_progress(str(summary.get("name") or run_dir.name), summary, read_metrics(run_dir / "metrics.jsonl", []))


def _draw(ax, points: list[Point], x: str, label: str, color: str, style: str) -> None:
    xs = [getattr(p, x) for p in points]
    ys = [p.value for p in points]
    ax.plot(xs, ys, color=color, linestyle=style, marker="o", markersize=3.5, linewidth=1.3, label=label)
    if any(p.low is not None and p.high is not None for p in points):
        low = [p.value - (p.low if p.low is not None else p.value) for p in points]
        high = [(p.high if p.high is not None else p.value) - p.value for p in points]
        ax.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor=color, alpha=0.5, capsize=2)


def progress_figure(runs: list[GameProgress], path: Path, title: str) -> Path | None:
    """Rows: one per position set (good-move rate), then Elo; columns: wall time, self-play games.
    With several runs each run has its own colour and each decoder its own line style; with one run
    each decoder gets a colour. None when no run has anything to draw."""
    sets = sorted({s for r in runs for s, _ in r.good})
    rows = [("good", s) for s in sets] + ([("elo", "")] if any(r.elo for r in runs) else [])
    if not rows:
        return None
    fig = Figure(figsize=(10.0, 3.0 * len(rows) + 0.6), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(len(rows), len(X_AXES), squeeze=False)
    styles = ["-", "--", ":", "-."]
    decoders = sorted({d for r in runs for _, d in r.good} | {d for r in runs for d in r.elo},
                      key=lambda d: (d != "raw", d))  # raw first: the solid line
    for row, (what, position_set) in zip(axes, rows):
        for ax, (x, x_label) in zip(row, X_AXES):
            for i, run in enumerate(runs):
                series = ({d: pts for (s, d), pts in run.good.items() if s == position_set} if what == "good"
                          else run.elo)
                for decoder, points in sorted(series.items()):
                    k = decoders.index(decoder)
                    color = f"C{i % 10}" if len(runs) > 1 else f"C{k % 10}"
                    style = styles[k % len(styles)] if len(runs) > 1 else "-"
                    label = f"{run.name} {decoder}" if len(runs) > 1 else decoder
                    _draw(ax, points, x, label, color, style)
            if what == "good":
                ax.set_title(f"good-move rate: {position_set}")
                ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            else:
                ax.set_title("Elo (ladder, random = 0; 95% bootstrap)")
            ax.set_xlabel(x_label)
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize="small")
    return save_figure(fig, path)


def compare_runs(run_a: Path, run_b: Path, out_dir: Path) -> Path:
    """Both runs' good-move rates and Elo on the same axes: OUT_DIR/compare.png (+ compare.html)."""
    runs = [read_run(run_a), read_run(run_b)]
    if runs[0].name == runs[1].name:
        runs[0].name, runs[1].name = f"{runs[0].name} (A)", f"{runs[1].name} (B)"
    for run, where in zip(runs, (run_a, run_b)):
        if run.empty():
            raise UserError(f"{where}: no good-move rates or Elo ladder to compare (set position_sets in the "
                            "training stages, and snapshots + a game_eval stage with ladder = true)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = progress_figure(runs, out_dir / "compare.png", f"{runs[0].name} vs {runs[1].name}")
    assert png is not None  # both runs have series
    page = out_dir / "compare.html"
    title = f"{escape(runs[0].name)} vs {escape(runs[1].name)}"
    page.write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>"
                    f"<body><h1>{title}</h1>"
                    "<p>Good-move rate on solver-labelled positions and ladder Elo against wall time and "
                    "self-play games. Elo is each run's own ladder (same reference players, random = 0).</p>"
                    f"{img_tag(png, 'comparison')}</body></html>\n", encoding="utf-8")
    return page


__all__ = ["GameProgress", "game_progress", "read_run", "progress_figure", "compare_runs", "run_time"]
