"""Policy-value net speed on connect four: search's forward (`infer`) and a training step, by precision.

Search spends most of its time in the net (about 88% of self-play CPU time with a fp32 ResNet 64x3,
`benchmarks/selfplay.py`), so this measures the pieces separately, one process, same random net:

  forward        `net(obs)` in eval mode under `torch.inference_mode` (plain PyTorch modules, NCHW)
  infer fp32     `net.infer`: batch norm folded into the convs, in-place ReLUs, channels-last,
                 `CPU_CHUNK` positions per pass
  infer bf16     the same in bfloat16 (what `NetConfig.inference = "auto"` picks on a CPU with AMX or
                 AVX512-BF16); only measured where the CPU has native bfloat16, since emulated
                 bfloat16 is slower than fp32
  train fp32 / bf16   one Adam step of the AlphaZero loss at `--batch` (`train_steps(precision=...)`)

Positions are random connect-four boards (about 30% of cells filled); speed does not depend on them.
It also prints how far bfloat16 logits and values are from fp32 ones on those boards.

    .venv/bin/python benchmarks/net_inference.py [--threads 2] [--channels 64] [--blocks 3]
                                                 [--batches 64 256 1024] [--batch 128] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from alphaloop.games.replay import ReplayBuffer
from alphaloop.learners.alphazero import train_steps
from alphaloop.policies.nets import NetConfig, PolicyValueNet, native_bf16


def rate(fn, items: int, seconds: float) -> float:
    """Items per second of `fn()` over about `seconds` (after three warm-up calls)."""
    for _ in range(3):
        fn()
    start, done = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        done += items
    return done / (time.perf_counter() - start)


def boards(count: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((count, 3, 6, 7)) < 0.3).astype(np.float32))


def net_with(config: NetConfig, inference: str) -> PolicyValueNet:
    torch.manual_seed(0)
    return PolicyValueNet(config.model_copy(update={"inference": inference}), (3, 6, 7), 7).eval()


def train_ms(config: NetConfig, precision: str, batch: int, steps: int = 30) -> float:
    """Milliseconds per Adam step of the AlphaZero loss at `batch`."""
    net = net_with(config, "float32")
    obs = boards(4 * batch, 1).numpy()
    buffer = ReplayBuffer(len(obs), (3, 6, 7), 7)
    policy = np.eye(7, dtype=np.float32)[np.arange(len(obs)) % 7]
    buffer.add(obs, policy, np.linspace(-1, 1, len(obs)).astype(np.float32))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    train_steps(net, optimizer, buffer, 3, batch, rng, precision)
    start = time.perf_counter()
    train_steps(net, optimizer, buffer, steps, batch, rng, precision)
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024], help="positions per infer call")
    parser.add_argument("--batch", type=int, default=128, help="training batch size")
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = NetConfig(kind="resnet", channels=args.channels, blocks=args.blocks, hidden=args.hidden)
    bf16 = native_bf16()
    print(f"resnet {args.channels}x{args.blocks}, {args.threads} thread(s), native bfloat16: {bf16}")
    fp32_net, bf16_net = net_with(config, "float32"), net_with(config, "bfloat16")
    rows = []
    for batch in args.batches:
        obs = boards(batch, 0)

        @torch.inference_mode()
        def forward(obs=obs):
            return fp32_net(obs)

        row = {"batch": batch, "forward": rate(forward, batch, args.seconds),
               "infer_fp32": rate(lambda obs=obs: fp32_net.infer(obs), batch, args.seconds)}
        if bf16:
            row["infer_bf16"] = rate(lambda obs=obs: bf16_net.infer(obs), batch, args.seconds)
        rows.append(row)
        cells = "  ".join(f"{k} {v:,.0f}/s" for k, v in row.items() if k != "batch")
        print(f"batch {batch:5d}: {cells}", flush=True)
    result = {"threads": args.threads, "native_bf16": bf16, "infer": rows,
              "train_ms": {"float32": train_ms(config, "float32", args.batch)}}
    if bf16:
        obs = boards(1024, 2)
        (l32, v32), (l16, v16) = fp32_net.infer(obs), bf16_net.infer(obs)
        result["bf16_max_abs_error"] = {"logits": float((l32 - l16).abs().max()),
                                        "values": float((v32 - v16).abs().max())}
        result["train_ms"]["bfloat16"] = train_ms(config, "bfloat16", args.batch)
    print(f"train step, batch {args.batch}: " + "  ".join(f"{k} {v:.1f} ms" for k, v in result["train_ms"].items()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
