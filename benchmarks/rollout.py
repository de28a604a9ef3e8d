"""Rollout speed: our KV-cache sampler vs HF `LlamaForCausalLM.generate`, same weights.

Both sides complete the same left-padded batch of `--batch` prompts (6-10 tokens) with up to
`--new` tokens at temperature 1 (no top-k), on the default quickstart Llama (`LMArch()`), under
one of two stopping rules, each stated in the output:

  fixed  every row generates exactly `--new` tokens: HF with min_new_tokens = max_new_tokens,
         ours through a view of the policy whose EOS id is -1, which can never be sampled.
         Measures the cost of a decoding step alone.
  eos    each row stops at its first EOS (HF: eos_token_id; ours: the policy's EOS), the rule
         RL and evaluation use. Tokens counted are the real completion tokens, EOS included
         (HF's output is cut at each row's first EOS), so both sides are credited for the same
         work; they sample from the same distribution, so lengths agree on average (printed).

Runs alternate ours / HF `--repeats` times so that load from other processes hits both alike;
printed are median tokens/s (wall clock, and per CPU-second of this process, which is steadier
on a shared machine) and the median of the per-round ratios (the paired ratio).

    .venv/bin/python benchmarks/rollout.py [--threads 2] [--batch 64] [--new 32] [--repeats 7]
                                           [--stop fixed eos]
    ALPHALOOP_ONEDNN=1 .venv/bin/python benchmarks/rollout.py   # force oneDNN linears (=0: force MKL)
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

from alphaloop.policies import matmul
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.policies.sampler import sample

ALPHABET = "0123456789+-*=() ?.\n"  # 20 characters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stop", nargs="+", choices=("fixed", "eos"), default=["fixed", "eos"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    policy = LMPolicy.build(LMArch(), ALPHABET, seed=0)
    rng = random.Random(0)
    prompts = [policy.prompt_ids("".join(rng.choice("0123456789+") for _ in range(rng.randint(5, 9))))
               for _ in range(args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        policy.save(tmp)
        hf = AutoModelForCausalLM.from_pretrained(tmp).eval()
    width = max(map(len, prompts))
    ids = torch.full((args.batch, width), policy.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    print(f"{policy.num_parameters / 1e6:.2f}M-param Llama, batch {args.batch}, up to {args.new} new tokens, "
          f"temperature 1, {args.threads} threads, linears on {'oneDNN' if matmul.enabled() else 'MKL'}")

    for stop in args.stop:
        eos = -1 if stop == "fixed" else policy.eos_id
        view = SimpleNamespace(model=policy.model, eos_id=eos, pad_id=policy.pad_id)
        seeds = iter(range(10**6))

        def ours(view=view, seeds=seeds) -> int:
            generator = torch.Generator().manual_seed(next(seeds))
            out = sample(view, prompts, args.new, temperature=1.0, generator=generator)
            return sum(map(len, out.completion_ids))

        def theirs(stop=stop) -> int:
            rule = {"min_new_tokens": args.new} if stop == "fixed" else {"eos_token_id": policy.eos_id}
            with torch.inference_mode():
                out = hf.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0,
                                  max_new_tokens=args.new, pad_token_id=policy.pad_id, **rule)
            rows = out[:, width:].tolist()
            return sum(row.index(policy.eos_id) + 1 if policy.eos_id in row else len(row) for row in rows)

        ours(), theirs()  # warm-up
        rates: dict[str, list[float]] = {"ours": [], "hf": []}
        cpu_rates: dict[str, list[float]] = {"ours": [], "hf": []}
        produced: dict[str, list[int]] = {"ours": [], "hf": []}
        for _ in range(args.repeats):
            for name, fn in (("ours", ours), ("hf", theirs)):
                start, cpu_start = time.perf_counter(), time.process_time()
                tokens = fn()
                rates[name].append(tokens / (time.perf_counter() - start))
                cpu_rates[name].append(tokens / (time.process_time() - cpu_start))
                produced[name].append(tokens)
        rule = (f"fixed length: every row generates {args.new} tokens" if stop == "fixed"
                else f"stop at EOS (at most {args.new}); tokens = completion tokens up to EOS")
        print(f"\nstopping rule: {rule}")
        for name in rates:
            print(f"{name:>5}: {statistics.median(rates[name]):8.0f} tokens/s wall, "
                  f"{statistics.median(cpu_rates[name]):8.0f} tokens/CPU-s, "
                  f"{statistics.mean(produced[name]) / args.batch:5.1f} tokens per row "
                  f"(wall runs: {', '.join(f'{x:.0f}' for x in rates[name])})")
        wall = statistics.median(a / b for a, b in zip(rates["ours"], rates["hf"]))
        cpu = statistics.median(a / b for a, b in zip(cpu_rates["ours"], cpu_rates["hf"]))
        print(f"ours / hf, median of {args.repeats} paired rounds: {wall:.2f}x wall, {cpu:.2f}x per CPU-second")


if __name__ == "__main__":
    main()
