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

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from alphaloop import checkpoint as ckpt
from alphaloop.errors import UserError
from alphaloop.recipe import Recipe, load_recipe, recipe_to_toml, validate_recipe
from alphaloop.runlog import MetricsLogger

console = Console(stderr=True)


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any tuple of keys (never Python's randomised hash)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


@dataclass
class RunContext:
    """What a stage needs from the run: its config, directories, env factory, logger, progress."""

    run_dir: Path
    recipe: Recipe
    logger: MetricsLogger
    progress: Progress
    index: int = 0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # completed stage name -> result
    started: float = field(default_factory=time.time)

    @property
    def stage(self):
        return self.recipe.stages[self.index]

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / "stages" / f"{self.index}-{self.stage.name}"

    def seed(self, *parts: Any) -> int:
        return derive_seed(self.recipe.seed, self.index, self.stage.name, *parts)

    def make_env(self, split: str = "train", seed: int | None = None):
        from alphaloop.envs.registry import make_env

        try:
            return make_env(self.recipe.env.name, split=split, seed=seed, **self.recipe.env.knobs)
        except (ValueError, TypeError, ImportError) as exc:
            raise UserError(f"env {self.recipe.env.name!r}: {exc}") from None

    # -- policies -------------------------------------------------------------------------
    def policy_dir(self, name: str) -> Path:
        """Final policy of a completed stage, by stage name."""
        if name not in self.results or "policy_dir" not in self.results[name]:
            trained = [n for n, r in self.results.items() if "policy_dir" in r]
            raise UserError(f"no trained policy named {name!r} (available: expert, {', '.join(trained) or 'none'})")
        return self.run_dir / self.results[name]["policy_dir"]

    def latest_policy_name(self) -> str | None:
        trained = [n for n, r in self.results.items() if "policy_dir" in r]
        return trained[-1] if trained else None

    def initial_policy(self):
        """The policy a training stage starts from: the previous trained stage's, else a fresh one."""
        if self.recipe.policy.kind == "net":  # board games: a policy-value net
            from alphaloop.stages.game_common import initial_net

            return initial_net(self)
        from alphaloop.policies.lm import LMPolicy

        previous = self.latest_policy_name()
        if previous is not None:
            return LMPolicy.load(self.policy_dir(previous))
        spec = self.recipe.policy
        if spec.pretrained:
            return LMPolicy.from_pretrained(spec.pretrained)
        env = self.make_env("train", seed=0)
        return LMPolicy.build(spec.arch, alphabet=env.alphabet, seed=derive_seed(self.recipe.seed, "init"))

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.stage_dir / "checkpoints"

    def save_checkpoint(self, step: int, policy, trainer_state: dict[str, Any], keep: int = 2) -> None:
        """Model (HF format) + trainer state (optimizer, RNGs, step, cursors), atomically."""

        def fill(tmp: Path) -> None:
            policy.save(tmp / "policy")
            torch.save({"step": step, "rng": rng_state(), **trainer_state}, tmp / "trainer.pt")

        ckpt.write_atomic_dir(self.checkpoint_root / f"step-{step:07d}", fill, meta={"step": step})
        ckpt.prune(self.checkpoint_root, keep)

    def save_final_policy(self, save) -> str:
        """Write the stage's final policy atomically with `save(dir)`; return its path within the run."""
        policy_dir = self.stage_dir / "policy"
        ckpt.write_atomic_dir(policy_dir, save)
        return str(policy_dir.relative_to(self.run_dir))

    def load_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """Newest good checkpoint of this stage (policy dir, trainer state), RNGs restored; cuts the log back."""
        path = ckpt.latest_good(self.checkpoint_root, warn=lambda m: console.print(f"[yellow]{m}"))
        step = -1
        state = None
        if path is not None:
            state = torch.load(path / "trainer.pt", weights_only=False)
            set_rng_state(state["rng"])
            step = state["step"]
        index = self.index
        self.logger.truncate(lambda r: r.get("stage_index", -1) < index or (
            r.get("stage_index") == index and r.get("step", 0) <= step))
        return None if path is None else (path / "policy", state)

    def log(self, step: int, **metrics: Any) -> None:
        record = {"stage": self.stage.name, "stage_index": self.index, "step": step,
                  "time_s": round(time.time() - self.started, 3), **metrics}
        self.logger.log(record)

    def new_progress_task(self, total: int, completed: int = 0) -> int:
        return self.progress.add_task(f"{self.index}:{self.stage.name}", total=total, completed=completed, info="")


def stage_runner(kind: str):
    """The function that runs a stage kind (imported lazily: only what a recipe uses is loaded)."""
    if kind == "imitate":
        from alphaloop.stages.imitate import run_imitate

        return run_imitate
    if kind == "rl":
        from alphaloop.stages.rl import run_rl

        return run_rl
    if kind == "eval":
        from alphaloop.stages.eval import run_eval

        return run_eval
    if kind in ("alphazero", "game_imitate", "game_eval"):
        from alphaloop.stages.alphazero import run_alphazero
        from alphaloop.stages.game_eval import run_game_eval
        from alphaloop.stages.game_imitate import run_game_imitate

        return {"alphazero": run_alphazero, "game_imitate": run_game_imitate, "game_eval": run_game_eval}[kind]
    raise UserError(f"stage kind {kind!r} is not available")


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console,
    )


def prepare_run_dir(recipe: Recipe, out: Path | None) -> Path:
    if out is None:  # default: runs/<name>, then runs/<name>-2, -3, ... (never reuse a run)
        run_dir, n = Path("runs") / recipe.name, 1
        while run_dir.exists() and any(run_dir.iterdir()):
            n += 1
            run_dir = Path("runs") / f"{recipe.name}-{n}"
    else:
        run_dir = Path(out)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"run directory {run_dir} already exists and is not empty: use "
                        f"`alphaloop run --resume {run_dir}` to continue it, or --out DIR for a new run")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.toml").write_text(recipe_to_toml(recipe))
    return run_dir


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
    free = max(cores - round(busy), 1)
    if threads > free:
        return (f"threads = {threads}, but other processes already keep about {round(busy)} of this machine's "
                f"{cores} cores busy: expect large slowdowns; `--set threads={free}` avoids them "
                "(results depend on the thread count, so compare runs made with the same one)")
    return None


def run(recipe: Recipe, run_dir: Path, show_progress: bool = True) -> dict[str, Any]:
    """Run (or continue) every stage of `recipe` in `run_dir`; return summary.json's content."""
    torch.set_num_threads(recipe.threads)
    seed_everything(recipe.seed)
    (run_dir / "stages").mkdir(exist_ok=True)
    timings_path = run_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    logger = MetricsLogger(run_dir)
    progress = make_progress()
    progress.disable = not show_progress
    ctx = RunContext(run_dir=run_dir, recipe=recipe, logger=logger, progress=progress)
    try:
        with progress:
            for index, stage in enumerate(recipe.stages):
                ctx.index = index
                result_path = ctx.stage_dir / "result.json"
                if result_path.is_file():
                    ctx.results[stage.name] = json.loads(result_path.read_text())
                    continue
                ctx.stage_dir.mkdir(parents=True, exist_ok=True)
                seed_everything(ctx.seed("start"))
                began = time.time()
                result = stage_runner(stage.kind)(ctx, stage)
                result.setdefault("kind", stage.kind)
                write_json_atomic(result_path, result)
                ctx.results[stage.name] = result
                timings[stage.name] = timings.get(stage.name, 0.0) + round(time.time() - began, 2)
                write_json_atomic(timings_path, timings)
    finally:
        logger.close()
    summary = build_summary(recipe, ctx.results)
    write_json_atomic(run_dir / "summary.json", summary)
    return summary


def build_summary(recipe: Recipe, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    stages, evals, curves, elo = [], [], {}, {}
    for index, stage in enumerate(recipe.stages):
        result = results.get(stage.name)
        status = "complete" if result is not None else "pending"
        entry = {"index": index, "kind": stage.kind, "name": stage.name, "status": status}
        if result is not None:
            entry.update({k: v for k, v in result.items() if k in ("steps", "final", "policy_dir")})
            evals.extend(result.get("evals", []))
            elo.update(result.get("elo", {}))
            for name, points in result.get("curves", {}).items():
                curves.setdefault(name, []).extend(points)
        stages.append(entry)
    summary = {
        "name": recipe.name, "seed": recipe.seed, "threads": recipe.threads, "env": recipe.env.name,
        "status": "complete" if all(s["status"] == "complete" for s in stages) else "incomplete",
        "stages": stages, "evals": evals, "curves": curves,
    }
    return summary | ({"elo": elo} if elo else {})


__all__ = ["run", "prepare_run_dir", "load_run_recipe", "RunContext", "validate_recipe", "derive_seed"]
