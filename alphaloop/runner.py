"""The stage loop: resolve a recipe into a run directory, run its stages, resume after a crash.

Run directory layout::

    recipe.toml               the resolved recipe (defaults filled in); --resume reads it back
    metrics.jsonl             one JSON object per training step / in-training eval
    tensorboard/              the same numbers as TensorBoard scalars
    stages/<i>-<name>/        checkpoints/step-N/ (atomic, checksummed), policy/ (HF format),
                              result.json (written when the stage completes)
    summary.json              the machine-readable report card (no wall times: equal runs, equal file)
    timings.json              wall times, kept apart from summary.json for that reason
    report.html, plots/       the human-readable report
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from alphaloop import interrupt
from alphaloop.checkpoint import write_json_atomic, write_text_atomic
from alphaloop.errors import UserError
from alphaloop.recipe import Recipe, load_recipe, recipe_to_toml
from alphaloop.runlog import MetricsLogger
from alphaloop.seeding import seed_everything
from alphaloop.stages import STAGES, StageContext

console = Console(stderr=True)


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
    )


def free_cores(busy: float | None = None, cores: int | None = None) -> int:
    """Cores other processes leave free right now (at least 1): what `threads = "auto"` resolves to."""
    busy = busy_cores() if busy is None else busy
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(cores - round(busy or 0.0), 1)


def resolve_threads(recipe: Recipe, busy: float | None = None) -> Recipe:
    """The recipe with `threads = "auto"` replaced by the free core count: a run's thread count is
    fixed once, when it starts, so its recipe.toml (and `--resume`) reproduces it exactly."""
    if recipe.threads != "auto":
        return recipe
    return recipe.model_copy(update={"threads": free_cores(busy)})


def prepare_run_dir(recipe: Recipe, out: Path | None) -> Path:
    if out is None:  # default: runs/<name>, then runs/<name>-2, -3, ... (never reuse a run)
        run_dir, n = Path("runs") / recipe.name, 1
        while run_dir.exists() and any(run_dir.iterdir()):
            n += 1
            run_dir = Path("runs") / f"{recipe.name}-{n}"
    else:
        run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir}: is a file, not a directory; give a new directory for the run")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"run directory {run_dir} already exists and is not empty: use "
                        f"`alphaloop run --resume {run_dir}` to continue it, or --out DIR for a new run")
    existed = run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "recipe.toml", recipe_to_toml(resolve_threads(recipe)))
    except OSError:
        if not existed:  # leave nothing behind: the fixed command must find no half-made run
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return run_dir


def has_progress(run_dir: Path) -> bool:
    """Whether a run has anything worth keeping: a finished stage or a checkpoint."""
    stages = Path(run_dir) / "stages"
    return stages.is_dir() and any(any(d.glob("result.json")) or any(d.glob("checkpoints/step-*"))
                                   for d in stages.iterdir() if d.is_dir())


def load_run_recipe(run_dir: Path) -> Recipe:
    path = Path(run_dir) / "recipe.toml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no recipe.toml)")
    return load_recipe(path)


def busy_cores(window: float = 0.3, stat: Path = Path("/proc/stat")) -> float | None:
    """Cores other processes keep busy right now: on Linux the non-idle share of all CPU time in
    /proc/stat over `window` seconds (this process sleeps meanwhile), times the core count; else
    the 1-minute load average, which lags by a minute (a job that just ended still counts);
    None where neither exists."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)        # idle + iowait
        return idle, sum(fields[:8])                                    # guest time is in user already

    try:
        idle0, total0 = sample()
        time.sleep(window)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if total1 <= total0:
        return 0.0
    return (os.cpu_count() or 1) * (1.0 - (idle1 - idle0) / (total1 - total0))


def warn_if_oversubscribed(threads: int, cores: int | None = None, busy: float | None = None) -> str | None:
    """A warning when `threads` exceeds the cores other processes leave free, else None.

    torch splits every product across its threads and waits for the slowest: when one of them
    shares a core with another busy process it runs only in that process's scheduler slices, and
    a step of small products slows down many times over (measured: the sampler at 2 threads on 2
    cores with one busy fell from ~30k to under 1k tokens/s; at 1 thread it kept its speed).
    `busy` is the number of cores in use, measured by `busy_cores` before this run starts working.
    """
    busy = busy if busy is not None else busy_cores()
    if busy is None:
        return None
    cores = cores if cores is not None else (os.cpu_count() or 1)
    free = free_cores(busy, cores)
    if threads > free:
        return (f"threads = {threads}, but other processes already keep about {round(busy)} of this machine's "
                f"{cores} cores busy: expect large slowdowns; `--set threads={free}` avoids them "
                "(results depend on the thread count, so compare runs made with the same one)")
    return None


def run(recipe: Recipe, run_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """Run (or continue) every stage of `recipe` in `run_dir`; return summary.json's content."""
    if recipe.threads == "auto":  # the count prepare_run_dir fixed for this run, else the free cores now
        saved = run_dir / "recipe.toml"
        recipe = load_run_recipe(run_dir) if saved.is_file() else resolve_threads(recipe)
        recipe = resolve_threads(recipe)
    torch.set_num_threads(recipe.threads)
    seed_everything(recipe.seed)
    (run_dir / "stages").mkdir(exist_ok=True)
    timings_path = run_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    logger = MetricsLogger(run_dir)
    progress = make_progress()
    progress.disable = not show_progress
    ctx = StageContext(run_dir=run_dir, recipe=recipe, logger=logger, progress=progress)
    try:
        with progress:
            for index, stage in enumerate(recipe.stages):
                interrupt.check()
                ctx.index = index
                result_path = ctx.stage_dir / "result.json"
                if result_path.is_file():
                    ctx.results[stage.name] = json.loads(result_path.read_text())
                    continue
                ctx.stage_dir.mkdir(parents=True, exist_ok=True)
                seed_everything(ctx.seed("start"))
                began = time.time()
                result = STAGES[stage.kind].run(ctx, stage)
                result.setdefault("kind", stage.kind)
                write_json_atomic(result_path, result)
                ctx.results[stage.name] = result
                timings[stage.name] = timings.get(stage.name, 0.0) + round(time.time() - began, 2)
                write_json_atomic(timings_path, timings)
    except BaseException as exc:
        logger.close(wait=not isinstance(exc, KeyboardInterrupt))
        raise
    logger.close()
    summary = build_summary(recipe, ctx.results)
    write_json_atomic(run_dir / "summary.json", summary)
    return summary


def build_summary(recipe: Recipe, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    stages, evals, curves, elo, fits = [], [], {}, {}, []
    for index, stage in enumerate(recipe.stages):
        result = results.get(stage.name)
        status = "complete" if result is not None else "pending"
        entry = {"index": index, "kind": stage.kind, "name": stage.name, "status": status}
        if result is not None:
            entry.update({k: v for k, v in result.items() if k in ("steps", "final", "policy_dir", "reward_model_dir",
                                                                     "train_precision")})
            evals.extend(result.get("evals", []))
            elo.update(result.get("elo", {}))
            fits.extend(result.get("fits", []))
            for name, points in result.get("curves", {}).items():
                curves.setdefault(name, []).extend(points)
        stages.append(entry)
    summary = {
        "name": recipe.name, "seed": recipe.seed, "threads": recipe.threads, "env": recipe.env.name,
        "status": "complete" if all(s["status"] == "complete" for s in stages) else "incomplete",
        "stages": stages, "evals": evals, "curves": curves,
    }
    return summary | ({"elo": elo} if elo else {}) | ({"fits": fits} if fits else {})


__all__ = ["run", "prepare_run_dir", "load_run_recipe", "build_summary", "busy_cores", "free_cores", "resolve_threads",
           "warn_if_oversubscribed"]
