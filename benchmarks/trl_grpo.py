"""Side by side: TRL's `GRPOTrainer` and alphaloop's `rl` stage, GRPO steps on the same setup.

Two rows, each stated in the output:

  quickstart  the headline: what `alphaloop run recipes/quickstart.toml` does in its rl stage,
              from the policy its imitate stage trains (here `--imitation-steps` steps of that
              stage, trained once and cached: benchmarks/_common.py). Its prompts x group size
              (16 x 8), learning rate, truncation masking and generation length (the rl stage's
              default max_new_tokens = env.max_completion_chars + 1). The policy gets some
              problems right and some wrong, so rewards vary within groups and both sides really
              learn; completions run to the length the task needs.
  overhead    the quickstart's untrained Llama, 8 prompts x 8 completions, at most 8 new tokens:
              every reward is 0 and no weight changes, so this row measures each side's fixed
              cost per step, not training.

Both sides start each row from the same HF-format weights (TRL loads them with
`AutoModelForCausalLM`), on the quickstart env (1-3 digit addition, the env's exact verifier as
reward), temperature 1, no top-k/top-p, beta 0 (no reference model), one optimisation pass,
token-mean loss (TRL's "dapo"), group mean/std advantages, clip 0.2, AdamW, CPU, fp32, the
same thread count; TRL without gradient checkpointing (its default is on, which would only
slow it down), logging or saving. A step is timed from the start of generation to the end of
the optimizer step on both sides (TRL: `on_step_begin` -> `on_step_end`; alphaloop: the `rl`
stage's own per-step timing, the same span). Printed per side: completions/s (median over
steps), reward mean, truncation share (completions that hit the limit without EOS) and mean
completion length in tokens (EOS included): equal lengths and rewards say both sides did the
same work. The sides run back to back in rounds (alphaloop then TRL, `--rounds` times,
`--steps` timed steps each after `--warmup` untimed ones), so load from other processes hits
both alike; the ratio is the median over rounds of (our completions/s / TRL's).

    .venv/bin/pip install -c constraints.txt trl     # benchmark only: the `bench` extra
    python benchmarks/trl_grpo.py [--threads 2] [--rounds 3] [--steps 10] [--rows quickstart overhead]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMITATION_STEPS, imitation_policy, machine, paired_parser, trl_missing  # noqa: E402
from _grpo import Setup, alphaloop_steps, headline, overhead, summarize, trl_steps, untrained_policy  # noqa: E402

from alphaloop.policies import matmul  # noqa: E402


def compare(setup: Setup, threads: int, rounds: int, steps: int, warmup: int) -> None:
    """Run one row in paired rounds and print both sides' figures and the ratio."""
    sides: dict[str, list] = {"alphaloop": [], "TRL": []}
    ratios = []
    for round_index in range(rounds):
        torch.set_num_threads(threads)
        ours = alphaloop_steps(setup, threads, steps + warmup, seed=round_index)[warmup:]
        theirs = trl_steps(setup, threads, steps + warmup, seed=round_index)[warmup:]
        sides["alphaloop"] += ours
        sides["TRL"] += theirs
        ratio = summarize(ours)["completions_per_s"] / summarize(theirs)["completions_per_s"]
        ratios.append(ratio)
        print(f"  round {round_index + 1}: alphaloop {summarize(ours)['completions_per_s']:.0f}, "
              f"TRL {summarize(theirs)['completions_per_s']:.0f} completions/s, ratio {ratio:.2f}x", flush=True)
    print(f"{setup.label}: {setup.prompts} prompts x {setup.group} completions, <= {setup.max_new_tokens} new "
          f"tokens, mask_truncated {setup.mask_truncated}, lr {setup.lr:g}")
    for name, steps_seen in sides.items():
        s = summarize(steps_seen)
        print(f"  {name:>9}: {s['completions_per_s']:6.0f} completions/s, reward mean {s['reward_mean']:.3f}, "
              f"truncated {s['truncated_frac']:.1%}, mean length {s['mean_length']:.1f} tokens")
    print(f"  ratio alphaloop / TRL (median of {rounds} paired rounds): {statistics.median(ratios):.2f}x", flush=True)


def main() -> None:
    parser = paired_parser(__doc__)
    parser.add_argument("--rows", nargs="+", choices=("quickstart", "overhead"), default=["quickstart", "overhead"])
    parser.add_argument("--imitation-steps", type=int, default=IMITATION_STEPS,
                        help="imitate-stage steps that train the headline's policy (cached)")
    args = parser.parse_args()
    print(machine())
    if trl_missing():
        return
    import trl
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices from transformers/TRL
    print(f"TRL {trl.__version__}, {args.threads} threads")
    with tempfile.TemporaryDirectory() as untrained:
        for row in args.rows:
            if row == "quickstart":
                policy = imitation_policy(args.imitation_steps, threads=args.threads)
                print(f"\nquickstart policy: {args.imitation_steps} imitate steps ({policy})")
                compare(headline(policy), args.threads, args.rounds, args.steps, args.warmup)
            else:
                print("\noverhead: untrained policy")
                compare(overhead(untrained_policy(untrained)), args.threads, args.rounds, args.steps, args.warmup)
    print(f"\nlinears: {matmul.describe()}")


if __name__ == "__main__":
    main()
