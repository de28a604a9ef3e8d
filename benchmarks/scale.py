"""Self-play throughput on connect four through `alphaloop.scale`: local vs Ray workers.

Each setting `backend:W` plays `--rounds` self-play rounds of `--games` games, split into W chunks
(`selfplay.self_play_jobs`) and run by `Workers.map(play_job, jobs, weights)` exactly as the
`alphazero` stage does: PUCT with `--sims` simulations per move, Dirichlet root noise, temperature 1
for 8 moves, the small untrained residual net of benchmarks/selfplay.py (NetConfig defaults). The
first round is a warm-up (Ray actors import torch and build their net) and is reported on its own,
not in the rate. Every worker uses `--threads` torch threads. Besides wall-clock
positions/s the table shows positions per CPU-second of the workers (their process CPU time while
playing): on a machine shared with other jobs the wall rate mostly measures the CPU share the
scheduler grants, the CPU rate what the work itself costs.

The records of `ray:W` are checked against `local:W` (same split, same seeds): they must be equal.
Rounds interleave the settings, so other jobs on a shared machine load them alike; Ray is started
once for all Ray settings (its start-up is printed on its own; the actors' start-up, which
imports torch, falls in their warm-up round).

    .venv/bin/python benchmarks/scale.py [--settings local:1 local:2 ray:2] [--games 64] [--sims 100]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from functools import partial

import numpy as np
import torch

from alphaloop.collect.selfplay import play_job, self_play_jobs
from alphaloop.games.registry import game_class
from alphaloop.policies.nets import NetConfig, PolicyValueNet
from alphaloop.scale import make_workers
from alphaloop.search.mcts import MCTSConfig


def timed_play_job(net, job) -> tuple[list, float]:
    """`play_job` plus the CPU seconds the worker process spent on it (all its threads)."""
    began = time.process_time()
    records = play_job(net, job)
    return records, time.process_time() - began


def fingerprint(records) -> list:
    """What a round produced: every game's moves, outcome and the policy targets' bytes."""
    return [(r.actions, r.returns, b"".join(np.asarray(p).tobytes() for p in r.policies)) for r in records]


def play_round(pool, workers: int, config: MCTSConfig, net: PolicyValueNet, args, round_: int) -> tuple:
    """One self-play round on `pool`: (seconds, positions, fingerprint, workers' CPU seconds)."""
    jobs = self_play_jobs("connect4", args.games, workers, config, 8, seed=args.seed + round_)
    began = time.perf_counter()
    chunks = pool.map(timed_play_job, jobs, weights=net.state_dict())
    records = [r for chunk, _ in chunks for r in chunk]
    return (time.perf_counter() - began, sum(len(r) for r in records), fingerprint(records),
            sum(cpu for _, cpu in chunks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["local:1", "local:2", "ray:2"],
                        help="backend:workers, e.g. local:1 ray:2")
    parser.add_argument("--games", type=int, default=64, help="self-play games per round")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per setting (after one warm-up round)")
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--leaf-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = PolicyValueNet(NetConfig(), game_class("connect4").observation_shape, game_class("connect4").num_actions)
    config = MCTSConfig(num_simulations=args.sims, batch_size=args.leaf_batch, dirichlet_fraction=0.25,
                        dirichlet_alpha=1.0)
    factory = partial(PolicyValueNet, net.config, net.observation_shape, net.num_actions)
    settings = [(backend, int(workers or 1)) for backend, _, workers in (s.partition(":") for s in args.settings)]

    print(f"connect four self-play, {args.games} games/round, {args.sims} simulations/move, "
          f"{args.threads} torch thread(s) per worker, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    ray_cpus = sum(w for b, w in settings if b == "ray") * args.threads
    if ray_cpus:  # one local Ray for all Ray settings, sized for all their actors
        import ray

        began = time.perf_counter()
        ray.init(num_cpus=ray_cpus, include_dashboard=False, log_to_driver=False, object_store_memory=96 << 20,
                 logging_level=logging.ERROR)
        print(f"ray.init: {time.perf_counter() - began:.1f} s")
    pools, rounds = [], {s: [] for s in settings}
    try:
        for backend, workers in settings:
            pools.append(make_workers(factory, backend=backend, workers=workers, threads=args.threads))
        # Rounds interleave the settings (round 0 of each, round 1 of each, ...) so that the load of
        # other jobs on a shared machine falls on all settings alike.
        for round_ in range(args.rounds + 1):
            for setting, pool in zip(settings, pools):
                rounds[setting].append(play_round(pool, setting[1], config, net, args, round_))
    finally:
        for pool in pools:
            pool.close()
        if ray_cpus:
            ray.shutdown()

    print(f"{'setting':>8} {'warm-up s':>9} {'positions':>9} {'seconds':>8} {'positions/s':>11} "
          f"{'per CPU-s':>9} {'same as local':>13}")
    for backend, workers in settings:
        done = rounds[(backend, workers)]
        seconds, positions, cpu = (sum(r[k] for r in done[1:]) for k in (0, 1, 3))
        twin = rounds.get(("local", workers))
        same = "-" if backend == "local" or not twin else ("yes" if [r[2] for r in twin] == [r[2] for r in done]
                                                            else "NO")
        print(f"{backend + ':' + str(workers):>8} {done[0][0]:>9.1f} {positions:>9} {seconds:>8.1f} "
              f"{positions / seconds:>11.1f} {positions / cpu:>9.1f} {same:>13}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (other jobs share the machine)")


if __name__ == "__main__":
    main()
