"""Rollout speed: our KV-cache sampler vs HF `LlamaForCausalLM.generate`, same weights.

Both sides generate exactly `--new` tokens per row (HF with min_new_tokens = max_new_tokens;
ours through a view of the policy whose EOS id is -1, which can never be sampled), at
temperature 1 from a left-padded batch of `--batch` prompts of 6-10 tokens.
Prints generated tokens per second (batch * new / wall time), median over `--repeats`.

    .venv/bin/python benchmarks/rollout.py [--threads 2] [--batch 64] [--new 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from types import SimpleNamespace

import torch
from transformers import AutoModelForCausalLM

from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.policies.sampler import sample

ALPHABET = "0123456789+-*=() ?.\n"  # 20 characters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = LMPolicy.build(LMArch(), ALPHABET, seed=0)
    rng = random.Random(0)
    prompts = [policy.prompt_ids("".join(rng.choice("0123456789+") for _ in range(rng.randint(5, 9))))
               for _ in range(args.batch)]
    # No early stop on either side: every row generates exactly args.new tokens.
    no_eos = SimpleNamespace(model=policy.model, eos_id=-1, pad_id=policy.pad_id)
    with tempfile.TemporaryDirectory() as tmp:
        policy.save(tmp)
        hf = AutoModelForCausalLM.from_pretrained(tmp).eval()

    width = max(map(len, prompts))
    ids = torch.full((args.batch, width), policy.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    tokens = args.batch * args.new

    def ours() -> int:
        out = sample(no_eos, prompts, args.new, temperature=1.0, generator=torch.Generator().manual_seed(0))
        return sum(map(len, out.completion_ids))

    def theirs() -> int:
        with torch.inference_mode():
            out = hf.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                              max_new_tokens=args.new, min_new_tokens=args.new, pad_token_id=policy.pad_id)
        return (out.shape[1] - width) * args.batch

    # Interleave the two so that load from other processes hits both alike. Wall-clock rates are
    # what a user sees; on a shared machine the per-CPU-second rates (process time) are steadier.
    ours(), theirs()  # warm-up
    rates: dict[str, list[float]] = {"ours": [], "hf": []}
    cpu_rates: dict[str, list[float]] = {"ours": [], "hf": []}
    for _ in range(args.repeats):
        for name, fn in (("ours", ours), ("hf", theirs)):
            start, cpu_start = time.perf_counter(), time.process_time()
            produced = fn()
            rates[name].append(produced / (time.perf_counter() - start))
            cpu_rates[name].append(produced / (time.process_time() - cpu_start))
            assert produced == tokens, (name, produced, tokens)
    median = {name: statistics.median(r) for name, r in rates.items()}
    cpu_median = {name: statistics.median(r) for name, r in cpu_rates.items()}
    for name, r in rates.items():
        print(f"{name:>4}: {median[name]:8.0f} tokens/s wall, {cpu_median[name]:8.0f} tokens/CPU-s  "
              f"(wall runs: {', '.join(f'{x:.0f}' for x in r)})")
    ratios = [a / b for a, b in zip(rates["ours"], rates["hf"])]
    print(f"arch {policy.num_parameters / 1e6:.2f}M params, batch {args.batch}, {args.new} new tokens, "
          f"threads {args.threads}: ours / hf = {median['ours'] / median['hf']:.2f}x wall "
          f"(median paired ratio {statistics.median(ratios):.2f}x), "
          f"{cpu_median['ours'] / cpu_median['hf']:.2f}x per CPU-second")

if __name__ == "__main__":
    main()
