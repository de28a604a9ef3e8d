"""What one competing busy process costs each piece of training: idle vs beside a spinning process.

On a shared machine another busy process takes a core, and torch splits every product across its
threads and waits for the slowest: a thread that shares a core with the other process runs only in
its scheduler slices, so work made of many small products (decoding, a small model's step) can slow
down many times over, while work on fewer threads than free cores barely notices. This benchmark
measures that for the four pieces users run, each small:

  sampler    our KV-cache sampler, `--batch` quickstart prompts, stop at EOS, quickstart max_new_tokens
  rl step    one GRPO step of the quickstart's `rl` stage (16 x 8), through the runner
  sft step   one step of the `imitate` stage (its batch, demonstrations + loss + AdamW)
  self-play  one round of `--games` lock-step connect-four games, the `alphazero` stage's search at
             `--sims` simulations, the project's resnet

all from the imitation-trained quickstart policy (benchmarks/_common.py, cached). Each is timed
(median of `--repeats`) idle and then with 1 busy process that this script starts and stops itself
(a Python subprocess spinning `while True: pass`), at threads = auto (`alphaloop.runner.free_cores()`,
the cores other processes leave free, resolved under each condition as a run with `threads = "auto"`
would be) and at an explicit `--threads` (default 2). Printed: seconds per piece under each
condition and the slowdown of busy over idle at the same thread setting. "Idle" means no process
started by this script: load from anything else on the machine is in both conditions.

    .venv/bin/python benchmarks/contention.py [--threads 2] [--repeats 3] [--pieces sampler rl sft selfplay]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import IMITATION_STEPS, imitation_policy, machine, quickstart  # noqa: E402
from _grpo import alphaloop_steps, headline  # noqa: E402
from rollout import load_sides, ours  # noqa: E402
from selfplay import bench as selfplay_bench  # noqa: E402

from alphaloop import runner  # noqa: E402
from alphaloop.search.net_evaluator import SELFPLAY_CACHE  # noqa: E402

PIECES = ("sampler", "rl", "sft", "selfplay")


@contextlib.contextmanager
def busy_process(count: int) -> Iterator[list[subprocess.Popen]]:
    """`count` Python processes spinning on a core each while the block runs; stopped afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5 if procs else 0.0)  # let the scheduler see them before anything is measured
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()


def median_seconds(fn: Callable[[], float | None], repeats: int) -> float:
    """Median over `repeats` calls after one warm-up: the seconds `fn` returns, else its wall time."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        own = fn()
        times.append(own if own is not None else time.perf_counter() - start)
    return statistics.median(times)


def sft_step(policy_dir: Path) -> Callable[[], None]:
    """One `imitate`-stage step (the quickstart's batch and lr) on a copy of the policy, per call."""
    from alphaloop.batch import pack_episodes
    from alphaloop.collect import demonstrations
    from alphaloop.envs.registry import make_env
    from alphaloop.learners.imitate import imitation_loss
    from alphaloop.policies.lm import LMPolicy

    q = quickstart()
    env = make_env(q.env["name"], split="train", seed=0, **q.env["knobs"])
    policy = LMPolicy.load(policy_dir)
    policy.model.train()
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=q.imitate_lr, weight_decay=0.01, betas=(0.9, 0.95))
    rng = random.Random(0)

    def step() -> None:
        episodes = demonstrations(env, policy, rng, q.imitate_batch)
        input_ids, attention, completion_mask = pack_episodes(episodes, policy.pad_id)
        loss = imitation_loss(policy, input_ids, attention, completion_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    return step


def measure(piece: str, threads: int, args: argparse.Namespace, policy_dir: Path, sides) -> float:
    """Seconds for one unit of `piece` at `threads` threads (median of args.repeats)."""
    torch.set_num_threads(threads)
    if piece == "sampler":
        seeds, new = iter(range(10**6)), quickstart().max_new_tokens

        def rollout() -> None:
            ours(sides, new, "eos", next(seeds))

        return median_seconds(rollout, args.repeats)
    if piece == "rl":
        steps = alphaloop_steps(headline(policy_dir), threads, args.repeats + 1)[1:]  # the first: warm-up
        return statistics.median(s.seconds for s in steps)
    if piece == "sft":
        return median_seconds(sft_step(policy_dir), args.repeats)
    return median_seconds(lambda: selfplay_bench("resnet", args.games, args.sims, SELFPLAY_CACHE, 0)["wall"],
                          args.repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="the explicit thread count besides auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pieces", nargs="+", choices=PIECES, default=list(PIECES))
    parser.add_argument("--batch", type=int, default=64, help="sampler: prompts")
    parser.add_argument("--games", type=int, default=16, help="self-play: games per round")
    parser.add_argument("--sims", type=int, default=32, help="self-play: simulations per move")
    parser.add_argument("--busy", type=int, default=1, help="competing busy processes")
    parser.add_argument("--imitation-steps", type=int, default=IMITATION_STEPS)
    args = parser.parse_args()
    print(machine())
    policy_dir = imitation_policy(args.imitation_steps, threads=args.threads)
    sides = load_sides(policy_dir, args.batch) if "sampler" in args.pieces else None
    results: dict[tuple[str, str, str], float] = {}
    resolved: dict[tuple[str, str], int] = {}
    # One untimed pass over every piece at both thread counts first: the first measurement in a
    # process otherwise pays one-off costs (kernel timing, memory first touched, lazy imports) that
    # made the sampler's first idle figure 2x its later ones (0.099 s against 0.051 s at 2 threads)
    # and so understated its slowdown under load.
    warm = argparse.Namespace(**{**vars(args), "repeats": 1})
    for threads in sorted({1, args.threads}):
        for piece in args.pieces:
            measure(piece, threads, warm, policy_dir, sides)
    for setting in ("auto", str(args.threads)):
        for load in ("idle", "busy"):
            with busy_process(args.busy if load == "busy" else 0):
                threads = runner.free_cores() if setting == "auto" else args.threads
                resolved[setting, load] = threads
                for piece in args.pieces:
                    results[setting, load, piece] = measure(piece, threads, args, policy_dir, sides)
                    print(f"threads {setting} (= {threads}), {load}: {piece} {results[setting, load, piece]:.3f} s",
                          flush=True)

    print(f"\nseconds per piece; busy = {args.busy} spinning process(es) started by this benchmark")
    print(f"{'piece':>10} {'threads':>10} {'idle s':>8} {'busy s':>8} {'slowdown':>9}")
    for setting in ("auto", str(args.threads)):
        label = f"{setting} ({resolved[setting, 'idle']}/{resolved[setting, 'busy']})" if setting == "auto" else setting
        for piece in args.pieces:
            idle, busy = results[setting, "idle", piece], results[setting, "busy", piece]
            print(f"{piece:>10} {label:>10} {idle:>8.3f} {busy:>8.3f} {busy / idle:>8.1f}x")
    print("auto (i/b) = the threads free_cores() gave when idle / when busy")


if __name__ == "__main__":
    main()
