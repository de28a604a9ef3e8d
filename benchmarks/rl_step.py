"""Throughput of a full RL step (generation + scoring + GRPO update): the `rl` stage alone.

The rows of benchmarks/trl_grpo.py without TRL (benchmarks/_grpo.py builds both):

  quickstart  the quickstart's rl stage (16 prompts x 8 completions, its learning rate and
              generation length) from an imitation-trained policy (benchmarks/_common.py: the
              quickstart's imitate stage, trained once and cached), so rewards vary and
              completions run to the length the task needs: the step users run;
  overhead    an untrained policy, 8 x 8, at most 8 new tokens: every reward 0, nothing learnt,
              the fixed cost of a step.

A step is timed from the start of sampling to the end of the optimizer step, as the `rl` stage
logs it (`samples_per_s`); the first `--warmup` steps are left out. Prints completions/s (median
over steps), reward mean, truncation share and mean completion length.

    python benchmarks/rl_step.py [--threads 2] [--steps 20] [--rows quickstart overhead]
    python benchmarks/trl_grpo.py            # the same, side by side with TRL
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMITATION_STEPS, imitation_policy, machine  # noqa: E402
from _grpo import alphaloop_steps, headline, overhead, summarize, untrained_policy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rows", nargs="+", choices=("quickstart", "overhead"), default=["quickstart", "overhead"])
    parser.add_argument("--imitation-steps", type=int, default=IMITATION_STEPS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    with tempfile.TemporaryDirectory() as untrained:
        for row in args.rows:
            setup = (headline(imitation_policy(args.imitation_steps, threads=args.threads)) if row == "quickstart"
                     else overhead(untrained_policy(untrained)))
            s = summarize(alphaloop_steps(setup, args.threads, args.steps + args.warmup)[args.warmup:])
            print(f"alphaloop RL step, {setup.label} (GRPO, {setup.prompts}x{setup.group}, <={setup.max_new_tokens} "
                  f"new tokens, {args.threads} threads): {s['completions_per_s']:.0f} completions/s, reward mean "
                  f"{s['reward_mean']:.3f}, truncated {s['truncated_frac']:.1%}, mean length {s['mean_length']:.1f} "
                  f"tokens, {setup.prompts * setup.group / s['completions_per_s'] * 1000:.0f} ms/step")
    print("side by side with TRL's GRPOTrainer: python benchmarks/trl_grpo.py")


if __name__ == "__main__":
    main()
