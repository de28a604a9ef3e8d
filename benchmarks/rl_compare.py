"""Compare the RL algorithms on one budget, from one imitation policy, and print the table.

    python benchmarks/rl_compare.py                      # run what is missing, then print the table
    python benchmarks/rl_compare.py --table-only         # only print the table of finished runs
    python benchmarks/rl_compare.py --seeds 0 1 2 --runs-dir /tmp/runs

Step 1 runs recipes/rl-compare.toml once (imitate 600 steps + its eval) into RUNS/rl-compare.
Step 2 runs recipes/rl-from-policy.toml for every variant and seed into RUNS/rl-<variant>-s<seed>,
starting from RUNS/rl-compare/stages/0-imitate/policy (`--set policy.pretrained=...`), so the
algorithms differ only in the RL update. Per-variant settings are in VARIANTS. A run
directory that exists but is unfinished is resumed; a finished one is reused. Runs go one at a
time, each with the recipe's thread count (1).

The table: greedy / maj@8 / pass@8 on the same 500 test and 500 heldout problems for every run
(the eval stage's `problems_seed = 0`), mean over seeds with the min-max range; the in-training
greedy accuracy after 20 steps (200 test problems, the set follows the seed) for how fast each
algorithm learns; and the RL stage's wall time from timings.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

# Each variant's overrides of recipes/rl-from-policy.toml. Dr. GRPO (Liu et al. 2025) is two changes
# to GRPO: no std in the advantage (the `dr_grpo` estimator) and a constant token normaliser
# (aggregation). `ppo-unmasked` is PPO with truncated completions kept in the loss (reward 0):
# by default (`mask_truncated`) they get no gradient, and one PPO seed of three collapsed into
# never-ending completions that nothing pushed back (docs/rl.md).
VARIANTS = {
    "reinforce": ["stages.0.algorithm=reinforce"],
    "rloo": ["stages.0.algorithm=rloo"],
    "grpo": ["stages.0.algorithm=grpo"],
    "dr_grpo": ["stages.0.algorithm=dr_grpo", "stages.0.aggregation=constant"],
    "ppo": ["stages.0.algorithm=ppo"],
    "ppo-unmasked": ["stages.0.algorithm=ppo", "stages.0.mask_truncated=false"],
}
EARLY_STEP = 20
COLUMNS = (("test", "greedy"), ("test", "maj@8"), ("test", "best@8"), ("test", "pass@8"), ("heldout", "greedy"),
           ("heldout", "pass@8"))


def alphaloop(*args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "alphaloop.cli", *args, "--no-progress"]
    print("$", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, env=env)


def finished(run_dir: Path) -> bool:
    summary = run_dir / "summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "complete"


def ensure_run(run_dir: Path, recipe: str, overrides: list[str]) -> None:
    if finished(run_dir):
        return
    if (run_dir / "recipe.toml").is_file():
        alphaloop("run", "--resume", str(run_dir))
    else:
        alphaloop("run", recipe, "--out", str(run_dir), *[a for o in overrides for a in ("--set", o)])


def accuracies(run_dir: Path, policy: str) -> dict[tuple[str, str], float]:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {(r["split"], r["decoder"]): r["metrics"]["accuracy"] for r in summary["evals"]
            if r["policy"] == policy and r.get("step") is None and "accuracy" in r.get("metrics", {})}


def early_accuracy(run_dir: Path, step: int) -> float | None:
    """The RL stage's in-training greedy accuracy (200 test problems) at `step`: how fast it learns."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return next((r["metrics"]["accuracy"] for r in summary["evals"] if r.get("step") == step
                 and r.get("stage") == "rl"), None)


def cell(values: list[float], percent: bool = True) -> str:
    if not values:
        return "-"
    scale, unit = (100, "%") if percent else (1, " s")
    mean = f"{statistics.mean(values) * scale:.1f}{unit}"
    if len(values) == 1:
        return mean
    return f"{mean} ({min(values) * scale:.1f}-{max(values) * scale:.1f})"


def table(runs_dir: Path, seeds: list[int], variants: list[str]) -> str:
    header = (["policy", "seeds", f"test greedy at step {EARLY_STEP}"]
              + [f"{split} {decoder}" for split, decoder in COLUMNS] + ["RL wall time"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    base = runs_dir / "rl-compare"
    if finished(base):
        found = accuracies(base, "imitate")
        lines.append("| imitate (start) | - | - | " + " | ".join(cell([found[c]] if c in found else [])
                                                             for c in COLUMNS) + " | - |")
    for variant in variants:
        dirs = [runs_dir / f"rl-{variant}-s{seed}" for seed in seeds]
        done = [d for d in dirs if finished(d)]
        if not done:
            continue
        per_run = [accuracies(d, "rl") for d in done]
        cells = [cell([found[c] for found in per_run if c in found]) for c in COLUMNS]
        walls = [json.loads((d / "timings.json").read_text()).get("rl") for d in done]
        early = cell([a for a in (early_accuracy(d, EARLY_STEP) for d in done) if a is not None])
        lines.append(f"| {variant} | {len(done)} | {early} | " + " | ".join(cells)
                     + f" | {cell(walls, percent=False)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--table-only", action="store_true", help="print the table of finished runs; run nothing")
    args = parser.parse_args()
    if not args.table_only:
        base = args.runs_dir / "rl-compare"
        ensure_run(base, "recipes/rl-compare.toml", [])
        policy = base / "stages" / "0-imitate" / "policy"
        for seed in args.seeds:
            for variant in args.variants:
                overrides = [*VARIANTS[variant], f"seed={seed}", f'policy.pretrained="{policy}"']
                ensure_run(args.runs_dir / f"rl-{variant}-s{seed}", "recipes/rl-from-policy.toml", overrides)
    print(table(args.runs_dir, args.seeds, args.variants))


if __name__ == "__main__":
    main()
