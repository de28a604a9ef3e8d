"""Throughput of a full RL step (generation + scoring + GRPO update) on the quickstart model.

Setup (the one benchmarks/trl_grpo.py gives TRL's GRPOTrainer too): the default Llama arch over
the arithmetic env's character tokenizer, 1-3 digit addition, 8 prompts x 8 completions, at
most 8 new tokens, temperature 1, beta 0 (no reference model), one optimisation pass, CPU.
A step is timed from the start of sampling to the end of the optimizer step, as the `rl`
stage logs it (`samples_per_s`); the first `--warmup` steps are left out. Prints completions/s
and new tokens/s (median over steps) and the time spent generating.

    python benchmarks/rl_step.py [--threads 2] [--steps 20]
    python benchmarks/trl_grpo.py            # the same, side by side with TRL
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

PROMPTS, GROUP, MAX_NEW_TOKENS, LR = 8, 8, 8, 1e-4
ENV = {"name": "arithmetic", "knobs": {"digits_min": 1, "digits_max": 3}}


def bench_recipe(threads: int, steps: int, seed: int = 0):
    return validate_recipe({
        "name": "bench-rl", "seed": seed, "threads": threads, "env": ENV,
        "stages": [{"kind": "rl", "algorithm": "grpo", "steps": steps, "prompts_per_step": PROMPTS,
                    "group_size": GROUP, "max_new_tokens": MAX_NEW_TOKENS, "lr": LR, "mask_truncated": False,
                    "eval_every": 10_000, "eval_problems": 1, "checkpoint_every": 10_000}],
    })


def alphaloop_steps(threads: int, steps: int, seed: int = 0) -> list[dict]:
    """Run `steps` RL steps through the runner; return each step's metrics record."""
    recipe = bench_recipe(threads, steps, seed)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = runner.prepare_run_dir(recipe, Path(tmp) / "run")
        runner.run(recipe, run_dir, show_progress=False)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r.get("stage") == "rl" and "samples_per_s" in r]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps = alphaloop_steps(args.threads, args.steps + args.warmup)[args.warmup:]
    completions = statistics.median(r["samples_per_s"] for r in steps)
    tokens = statistics.median(r["tokens_per_s"] for r in steps)
    generation = statistics.median(r["generation_s"] for r in steps)
    print(f"alphaloop RL step (GRPO, {PROMPTS}x{GROUP}, <={MAX_NEW_TOKENS} new tokens, {args.threads} threads): "
          f"{completions:.0f} completions/s, {tokens:.0f} new tokens/s, "
          f"{PROMPTS * GROUP / completions * 1000:.0f} ms/step of which generation {generation * 1000:.0f} ms")
    print("side by side with TRL's GRPOTrainer: python benchmarks/trl_grpo.py")


if __name__ == "__main__":
    main()
