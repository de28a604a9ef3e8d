"""Multi-turn rollout speed: episodes in lock-step batches against one episode at a time.

Both sides play the same `shell` tasks with the same trained policy (default: the imitation policy
of `recipes/agent-shell.toml`, i.e. `runs/agent-shell/stages/0-imitate/policy`; an untrained policy
would stop its actions at random and measure nothing users run) through `collect.agent_episodes`:
`--batch` episodes stepped together (every turn one sampler call over all running episodes), against
the same episodes with `batch_size=1` (each episode played to the end on its own, as a plain
generate-per-turn loop does). Printed: env steps/s and generated (policy) tokens/s of each side, and
their ratio, per round; rounds alternate the sides so that load from other processes hits both.

    .venv/bin/python benchmarks/agent_rollout.py [--policy DIR] [--batch 64] [--threads 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine  # noqa: E402

from alphaloop.collect.agent import agent_episodes  # noqa: E402
from alphaloop.envs import make_env  # noqa: E402
from alphaloop.policies.lm import LMPolicy  # noqa: E402
from alphaloop.recipe import load_recipe  # noqa: E402


def play(policy, env, problems, batch_size: int, seed: int) -> tuple[float, int, int, float]:
    """(seconds, env steps, policy tokens, success rate) of one pass over `problems`."""
    began = time.perf_counter()
    groups = agent_episodes(policy, env, problems, 1, temperature=1.0, batch_size=batch_size,
                            generator=torch.Generator().manual_seed(seed))
    elapsed = time.perf_counter() - began
    episodes = [g[0] for g in groups]
    return (elapsed, sum(e.info["steps"] for e in episodes), sum(sum(e.action_mask) for e in episodes),
            sum(e.success for e in episodes) / len(episodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default=str(REPO / "runs" / "agent-shell" / "stages" / "0-imitate" / "policy"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (Path(args.policy) / "config.json").is_file():
        sys.exit(f"--policy {args.policy}: no trained policy there; run `alphaloop run recipes/agent-shell.toml` "
                 "first (or pass a policy directory)")
    torch.set_num_threads(args.threads)
    print(machine(), f"| threads {args.threads}")
    recipe = load_recipe(str(REPO / "recipes" / "agent-shell.toml"))
    env = make_env("shell", split="test", **recipe.env.knobs)
    policy = LMPolicy.load(args.policy)
    problems = env.problems("test", args.batch, seed=0)
    print(f"{len(problems)} test tasks, temperature 1, policy {args.policy}")
    ratios = []
    for round_ in range(args.rounds):
        sides = {}
        for name, batch_size in (("lock-step", args.batch), ("one at a time", 1)):
            sides[name] = play(policy, env, problems, batch_size, seed=round_)
        for name, (seconds, steps, tokens, success) in sides.items():
            print(f"round {round_}  {name:>13}: {steps / seconds:7.1f} env steps/s  {tokens / seconds:8.1f} "
                  f"tokens/s  ({steps} steps, {tokens} tokens, success {success:.0%}, {seconds:.1f} s)")
        (fast, fast_steps, *_), (slow, slow_steps, *_) = sides["lock-step"], sides["one at a time"]
        ratios.append((fast_steps / fast) / (slow_steps / slow))
    print(f"lock-step / one at a time, env steps/s: median {statistics.median(ratios):.2f}x "
          f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
