"""The report's figures: learning curves, curves from summary.json (test-time compute, ...) and Elo.

We draw with matplotlib's object API (`Figure` + the Agg canvas), never `pyplot`: no global
state, no GUI backend to pick, safe to call from any process. PNGs are written without the
"Software" metadata, and matplotlib's Agg PNGs carry no timestamp, so the same numbers give
byte-identical files, which keeps two reports of equal runs equal.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

SKIP_KEYS = {"step", "time_s", "stage_index", "selfplay_games"}  # bookkeeping, not metrics
# The x axis of a curve: the first of these that every point has.
CURVE_X_KEYS = ("k", "samples", "samples_drawn", "stage_seconds", "n", "step", "kl_sqrt", "kl", "horizon")
COUNT_KEYS = {"n", "problems", "seed"}  # sizes of an experiment, never plotted as a y value
LOG2_X_KEYS = {"k", "samples", "n"}  # sample counts double from point to point
RATE_SUFFIXES = ("success_rate", "win_rate", "draw_rate", "harm_rate", "solve_rate", "pass_rate", "move_rate")
DPI = 100


def is_rate(key: str) -> bool:
    """Metrics that are fractions in [0, 1] and read best as percentages."""
    key = key.lower()
    return (key in ("accuracy", "success", "harm") or key.endswith(("accuracy", *RATE_SUFFIXES))
            or key.startswith(("pass@", "pass^", "maj@", "oracle@")))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG with no embedded software/version string (deterministic bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def img_tag(path: Path, alt: str) -> str:
    """The PNG at `path` as an <img> with its bytes inline (base64), so a page is one self-contained file."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _grid(n_panels: int, title: str) -> tuple[Figure, list]:
    cols = min(3, n_panels)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(4.3 * cols, 3.0 * rows + 0.5), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _style_y(ax, key: str, values: Iterable[float]) -> None:
    finite = [v for v in values if math.isfinite(v)]
    if is_rate(key) and finite and min(finite) >= 0 and max(finite) <= 1:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.05) + 0.005)  # never below 0%
    elif "loss" in key and finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")  # losses fall by orders of magnitude; a linear axis hides the tail
    ax.grid(alpha=0.3)


def _ema(values: Sequence[float], span: int) -> list[float]:
    """Exponential moving average (alpha = 2 / (span + 1)) that skips non-finite values."""
    alpha, out, state = 2.0 / (span + 1), [], None
    for v in values:
        if math.isfinite(v):
            state = v if state is None else (1 - alpha) * state + alpha * v
        out.append(math.nan if state is None else state)
    return out


def learning_curve_figure(stage: str, records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """One figure for one stage: a panel per numeric metric against step.

    Training records are lines (raw, plus a moving average when there are many noisy points);
    in-training evals (records with kind == "eval") are markers, one series per split x decoder.
    Returns None when the stage logged nothing plottable.
    """
    train: dict[int, dict[str, Any]] = {}
    evals: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for record in records:
        step = record.get("step")
        if not _number(step):
            continue
        if record.get("kind") == "eval":
            series = (str(record.get("split", "?")), str(record.get("decoder", "?")))
            evals.setdefault(series, {})[int(step)] = record  # a repeated step (resume) keeps the last
        else:
            train[int(step)] = record
    train_keys = sorted({k for r in train.values() for k, v in r.items()
                         if _number(v) and k not in SKIP_KEYS})
    eval_keys = sorted({k for s in evals.values() for r in s.values() for k, v in r.items()
                        if _number(v) and k not in SKIP_KEYS})
    panels = [("train", k) for k in train_keys] + [("eval", k) for k in eval_keys]
    if not panels:
        return None
    fig, axes = _grid(len(panels), f"stage {stage}")
    steps = sorted(train)
    for ax, (source, key) in zip(axes, panels):
        if source == "train":
            xs = [s for s in steps if _number(train[s].get(key))]
            ys = [float(train[s][key]) for s in xs]
            if len(xs) > 100:
                ax.plot(xs, ys, color="C0", alpha=0.25, linewidth=0.8)
                smooth = _ema(ys, max(2, len(xs) // 50))
                ax.plot(xs, smooth, color="C0", linewidth=1.5, label="moving average")
            else:
                ax.plot(xs, ys, color="C0", linewidth=1.5, marker="." if len(xs) < 30 else None)
            ax.set_title(key)
        else:
            ys = []
            for i, ((split, decoder), by_step) in enumerate(sorted(evals.items())):
                xs = [s for s in sorted(by_step) if _number(by_step[s].get(key))]
                series = [float(by_step[s][key]) for s in xs]
                ys += series
                if xs:
                    ax.plot(xs, series, color=f"C{(i + 1) % 10}", marker="o", linestyle="--", linewidth=1,
                            label=f"{split} {decoder}")
            ax.set_title(f"eval {key}")
            ax.legend(fontsize="small")
        _style_y(ax, key, ys)
        ax.set_xlabel("step")
    return save_figure(fig, path)


def curve_figure(name: str, points: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """A summary.json curve: a list of points such as {"policy", "split", "decoder", "k", "accuracy"}.

    The x axis is the first of CURVE_X_KEYS that every point has (log2 for sample counts such as
    the test-time-compute curve's k), every other numeric key gets a panel, and each combination of
    the points' text fields (policy / split / decoder) is one line. None when nothing fits.
    """
    points = [p for p in points if isinstance(p, dict)]
    x_key = next((k for k in CURVE_X_KEYS if points and all(_number(p.get(k)) for p in points)), None)
    if x_key is None:
        return None
    y_keys = sorted({k for p in points for k, v in p.items()
                     if _number(v) and k != x_key and k not in COUNT_KEYS})
    if not y_keys:
        return None
    label_keys = sorted({k for p in points for k, v in p.items() if isinstance(v, str)})
    varying = [k for k in label_keys if len({p.get(k) for p in points}) > 1] or label_keys
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(tuple(str(p.get(k, "")) for k in varying), []).append(p)
    title = name.replace("_", " ")
    fig, axes = _grid(len(y_keys), title)
    log2 = x_key in LOG2_X_KEYS and all(p[x_key] > 0 for p in points)
    for ax, key in zip(axes, y_keys):
        ys = []
        for i, (label, members) in enumerate(sorted(groups.items())):
            members = sorted((p for p in members if _number(p.get(key))), key=lambda p: p[x_key])
            if members:
                series = [float(p[key]) for p in members]
                ys += series
                reference = "p^h" in label  # a model's prediction (independent errors), not a measurement
                ax.plot([p[x_key] for p in members], series, marker="." if reference else "o", color=f"C{i % 10}",
                        linestyle="--" if reference else "-", label=" / ".join(label) or key)
        if log2:
            ax.set_xscale("log", base=2)
            xs = sorted({p[x_key] for p in points})
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
        elif all(isinstance(p[x_key], int) for p in points):   # counts (a horizon): whole-number ticks
            ax.set_xticks(sorted({p[x_key] for p in points}))
        ax.set_xlabel("samples per problem (k)" if x_key == "k" else x_key)
        ax.set_title(key)
        ax.legend(fontsize="small")
        _style_y(ax, key, ys)
    return save_figure(fig, path)


def elo_figure(ratings: dict[str, float], path: Path) -> Path | None:
    """Horizontal bars, strongest at the top."""
    items = sorted(((str(k), float(v)) for k, v in ratings.items() if _number(v)), key=lambda kv: kv[1])
    if not items:
        return None
    fig = Figure(figsize=(6.0, 0.45 * len(items) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh([k for k, _ in items], [v for _, v in items], color="C2")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("Elo")
    ax.set_title("Elo ladder")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


__all__ = ["learning_curve_figure", "curve_figure", "elo_figure", "save_figure", "is_rate", "slug"]
