"""Process memory (RSS) and step time of agent imitation steps, with and without `heap.trim_heap`.

Each side runs in a fresh subprocess (a heap of its own): `--steps` invoices imitation steps
(`collect.demonstrations` -> `batch.episode_batch` -> `completion_imitation_loss` -> AdamW, memory 3,
a fresh 0.85M-parameter policy), one side trimming the C heap every `heap.TRIM_EVERY` steps as the
training loops do, the other never. Printed per side and round: mean step time, peak RSS and RSS
after the last step (Linux: `heap.resident_bytes`); rounds alternate the sides so that load
from other processes hits both.

    .venv/bin/python benchmarks/heap_growth.py [--steps 80] [--batch 12] [--threads 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine  # noqa: E402

SIDE = """
import json, random, sys, time
import torch
from alphaloop.batch import episode_batch
from alphaloop.collect import demonstrations
from alphaloop.envs import make_env
from alphaloop.heap import TRIM_EVERY, resident_bytes as rss, trim_heap
from alphaloop.learners.imitate import completion_imitation_loss
from alphaloop.policies.arch import LMArch
from alphaloop.policies.lm import LMPolicy
trim, steps, batch_size, threads = sys.argv[1] == "trim", int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
env = make_env("invoices", split="train", memory=3)
policy = LMPolicy.build(LMArch(max_seq_len=256), alphabet=env.alphabet, seed=0)
policy.model.train()
optimizer = torch.optim.AdamW(policy.model.parameters(), lr=3e-3)
peak, began = 0, time.time()
for step in range(steps):
    episodes = demonstrations(env, policy, random.Random(step), batch_size)
    completion_imitation_loss(policy, episode_batch(episodes, policy.pad_id)).backward()
    optimizer.step()
    optimizer.zero_grad()
    peak = max(peak, rss())
    if trim and (step + 1) % TRIM_EVERY == 0:
        trim_heap()
print(json.dumps({"step_s": (time.time() - began) / steps, "peak": peak, "final": rss()}))
"""


def side(trim: bool, steps: int, batch: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", SIDE, "trim" if trim else "keep", str(steps), str(batch),
                          str(threads)], capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch", type=int, default=12, help="expert transcripts a step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine())
    print(f"invoices imitation, {args.steps} steps of {args.batch} transcripts, {args.threads} threads")
    gib = 2 ** 30
    for round_ in range(args.rounds):
        for trim in ((False, True) if round_ % 2 == 0 else (True, False)):
            r = side(trim, args.steps, args.batch, args.threads)
            label = "trim every 10 steps" if trim else "no trim           "
            print(f"round {round_ + 1}  {label}  {r['step_s']:.3f} s/step  peak RSS {r['peak'] / gib:.2f} GiB  "
                  f"RSS at the end {r['final'] / gib:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
