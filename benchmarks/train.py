"""Training speed of the default LM policy: tokens/s and MFU of a forward + backward + AdamW step.

FLOPs per step = 6 * N * tokens  (Kaplan et al. 2020: 2N forward, 4N backward per token, N = all
parameters, the tied embedding counted once since the LM head is a real V x d matmul)
               + 12 * L * T * d * tokens  (attention scores and values, forward + backward, PaLM
Chowdhery et al. 2022 appendix B; counted without the causal halving).
MFU = achieved FLOP/s / the fp32 matmul peak measured here (best large square `torch.mm`).

    .venv/bin/python benchmarks/train.py [--threads 2] [--batch 64] [--seq 48] [--steps 10] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peak import matmul_peak_flops  # noqa: E402

from alphaloop.policies.lm import LMArch, LMPolicy  # noqa: E402

ALPHABET = "0123456789+-*=() ?.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq", type=int, default=48)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    arch = LMArch()
    policy = LMPolicy.build(arch, ALPHABET, seed=0)
    model = torch.compile(policy.model) if args.compile else policy.model
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    vocab = len(policy.tokenizer)
    ids = torch.randint(4, vocab, (args.batch, args.seq), generator=g)
    ids[:, 0] = policy.bos_id
    mask = torch.ones_like(ids)  # full rows: every token counts; right padding takes the same kernel

    def step() -> None:
        logits = model(ids, attention_mask=mask)[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()  # warm-up (and compilation)
    tokens = args.batch * args.seq
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        rates.append(args.steps * tokens / (time.perf_counter() - start))
    rate = statistics.median(rates)

    n = policy.num_parameters
    dense = 6 * n
    attention = 12 * arch.num_layers * args.seq * arch.hidden_size
    peak = matmul_peak_flops()
    print(f"arch {n / 1e6:.3f}M params, batch {args.batch} x {args.seq} tokens, threads {args.threads}, "
          f"compile {args.compile}")
    print(f"train: {rate:10.0f} tokens/s median  (runs: {', '.join(f'{r:.0f}' for r in rates)})")
    print(f"FLOPs/token: 6N = {dense / 1e6:.2f}M, + attention 12*L*T*d = {attention / 1e6:.2f}M")
    print(f"matmul peak (fp32 torch.mm 1024/2048, best of 5): {peak / 1e9:.1f} GFLOP/s")
    print(f"MFU: {rate * dense / peak:.1%} (6N only), "
          f"{rate * (dense + attention) / peak:.1%} (6N + attention)")


if __name__ == "__main__":
    main()
