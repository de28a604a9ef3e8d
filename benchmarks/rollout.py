"""Rollout speed: our KV-cache sampler vs HF `LlamaForCausalLM.generate`, same weights.

Both sides complete the same left-padded batch of `--batch` quickstart prompts (1-3 digit
additions, BOS included) with up to `--new` tokens (default: the quickstart rl stage's
max_new_tokens) at temperature 1 (no top-k), from the same policy: the quickstart's, trained by
its imitate stage (benchmarks/_common.py, trained once and cached), saved in HF format and
loaded by both. Two stopping rules, each stated in the output:

  fixed  every row generates exactly `--new` tokens: HF with min_new_tokens = max_new_tokens,
         ours through a view of the policy whose EOS id is -1, which can never be sampled.
         Measures the cost of a decoding step alone; the weights do not matter here.
  eos    each row stops at its first EOS (HF: eos_token_id; ours: the policy's EOS), the rule
         RL and evaluation use. Tokens counted are the real completion tokens, EOS included
         (HF's output is cut at each row's first EOS), so both sides are credited for the same
         work; they sample from the same distribution, so lengths agree on average (printed).
         The trained policy matters here: it stops where the answer ends, as in RL, while an
         untrained one stops at random, and uneven random lengths flatter the side that drops
         finished rows from the batch (ours).

Runs alternate ours / HF `--repeats` times so that load from other processes hits both alike;
printed are median tokens/s (wall clock, and per CPU-second of this process, which is steadier
on a shared machine) and the median of the per-round ratios (the paired ratio).

    .venv/bin/python benchmarks/rollout.py [--threads 2] [--batch 64] [--new 31] [--repeats 7]
                                           [--stop fixed eos]
    ALPHALOOP_ONEDNN=1 .venv/bin/python benchmarks/rollout.py   # force oneDNN linears (=0: force MKL)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMITATION_STEPS, imitation_policy, machine, quickstart  # noqa: E402

from alphaloop.policies import matmul  # noqa: E402
from alphaloop.policies.lm import LMPolicy  # noqa: E402
from alphaloop.policies.sampler import sample  # noqa: E402


@dataclass
class Sides:
    """Both sides of the comparison, loaded from one HF-format directory, and the prompt batch."""

    policy: LMPolicy
    hf: Any                      # transformers' LlamaForCausalLM
    prompts: list[list[int]]     # token ids, BOS included
    ids: torch.Tensor            # the same prompts, left-padded, for HF
    mask: torch.Tensor


def load_sides(policy_dir: str | Path, batch: int, seed: int = 0) -> Sides:
    """Our policy and HF's model from `policy_dir`, and `batch` quickstart prompts."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from alphaloop.envs.registry import make_env

    hf_logging.disable_progress_bar()
    policy = LMPolicy.load(policy_dir)
    policy.model.eval()
    hf = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).eval()
    q = quickstart()
    env = make_env(q.env["name"], split="train", seed=seed, **q.env["knobs"])
    rng = random.Random(seed)
    prompts = [policy.prompt_ids(env.sample_problem(rng, "train").prompt) for _ in range(batch)]
    width = max(map(len, prompts))
    ids = torch.full((batch, width), policy.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return Sides(policy, hf, prompts, ids, mask)


def ours(sides: Sides, new: int, stop: str, seed: int, temperature: float = 1.0) -> list[list[int]]:
    """Our sampler's completions (EOS included where it stopped)."""
    p = sides.policy
    view = SimpleNamespace(model=p.model, eos_id=-1 if stop == "fixed" else p.eos_id, pad_id=p.pad_id,
                           position_ids=p.position_ids)
    generator = torch.Generator().manual_seed(seed)
    return sample(view, sides.prompts, new, temperature=temperature, generator=generator).completion_ids


def hf(sides: Sides, new: int, stop: str, seed: int, temperature: float = 1.0) -> list[list[int]]:
    """HF generate's completions, each cut after its first EOS for the `eos` rule."""
    p = sides.policy
    rule = {"min_new_tokens": new} if stop == "fixed" else {"eos_token_id": p.eos_id}
    sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = sides.hf.generate(input_ids=sides.ids, attention_mask=sides.mask, max_new_tokens=new,
                                pad_token_id=p.pad_id, **sampling, **rule)
    rows = out[:, sides.ids.shape[1]:].tolist()
    if stop == "fixed":
        return rows
    return [row[:row.index(p.eos_id) + 1] if p.eos_id in row else row for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new", type=int, default=None, help="default: the quickstart rl stage's max_new_tokens")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stop", nargs="+", choices=("fixed", "eos"), default=["fixed", "eos"])
    parser.add_argument("--imitation-steps", type=int, default=IMITATION_STEPS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    new = args.new or quickstart().max_new_tokens
    print(machine())
    policy_dir = imitation_policy(args.imitation_steps, threads=args.threads)
    sides = load_sides(policy_dir, args.batch)
    print(f"{sides.policy.num_parameters / 1e6:.2f}M-param Llama trained by {args.imitation_steps} imitate steps, "
          f"batch {args.batch}, up to {new} new tokens, temperature 1, {args.threads} threads")

    for stop in args.stop:
        seeds = iter(range(10**6))
        runs = {"ours": lambda stop=stop, seeds=seeds: ours(sides, new, stop, next(seeds)),
                "hf": lambda stop=stop, seeds=seeds: hf(sides, new, stop, next(seeds))}
        for fn in runs.values():
            fn()  # warm-up
        rates: dict[str, list[float]] = {"ours": [], "hf": []}
        cpu_rates: dict[str, list[float]] = {"ours": [], "hf": []}
        produced: dict[str, list[int]] = {"ours": [], "hf": []}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                tokens = sum(map(len, fn()))
                rates[name].append(tokens / (time.perf_counter() - start))
                cpu_rates[name].append(tokens / (time.process_time() - cpu_start))
                produced[name].append(tokens)
        rule = (f"fixed length: every row generates {new} tokens" if stop == "fixed"
                else f"stop at EOS (at most {new}); tokens = completion tokens up to EOS")
        print(f"\nstopping rule: {rule}")
        for name in rates:
            print(f"{name:>5}: {statistics.median(rates[name]):8.0f} tokens/s wall, "
                  f"{statistics.median(cpu_rates[name]):8.0f} tokens/CPU-s, "
                  f"{statistics.mean(produced[name]) / args.batch:5.1f} tokens per row "
                  f"(wall runs: {', '.join(f'{x:.0f}' for x in rates[name])})")
        wall = statistics.median(a / b for a, b in zip(rates["ours"], rates["hf"]))
        cpu = statistics.median(a / b for a, b in zip(cpu_rates["ours"], cpu_rates["hf"]))
        print(f"ours / hf, median of {args.repeats} paired rounds: {wall:.2f}x wall, {cpu:.2f}x per CPU-second")
    print(f"\nlinears: {matmul.describe()}")


if __name__ == "__main__":
    main()
