"""Self-play speed on connect four: positions (moves played) per second, games in lock-step.

Each setting plays `width` complete self-play games at once through `selfplay.play_games` with PUCT
search of `--sims` simulations per move (Dirichlet root noise, temperature 1 for 8 moves, tree reuse)
and an untrained net. All games' leaves go to the net in one batched forward per search step, so the
width shows what batching buys. Nets:

  resnet         NetConfig defaults: 32 channels, 2 residual blocks (the project's connect-four net)
  openspiel-mlp  OpenSpiel AlphaZero's "mlp" model at width 64, depth 2 (torso 2 x dense 64 + ReLU,
                 policy head dense 64 + ReLU -> 7, value head dense 64 + ReLU -> 1 -> tanh)

OpenSpiel side by side: with `--openspiel-python PYTHON` (an interpreter with `pip install
open_spiel jax flax optax`: a benchmark-only environment, e.g. a separate venv) the script also
runs OpenSpiel's own Python AlphaZero actor loop (`benchmarks/_openspiel_actor.py`: its model,
evaluator, bots and `_play_game`) on connect four at the same simulation count with the
openspiel-mlp net for `--openspiel-seconds`, on one thread, and divides by what it measures.
Without it the ratio uses a reference figure: OpenSpiel 2.0.2's Python AlphaZero, connect four,
100 simulations, mlp 64x2, 1 actor, measured at about 4.2 states/s on a machine of this kind (a
state = a move played, counted the same way as our positions). Like ours, its evaluator caches
net outputs (LRU of 2^16 positions); unlike ours it plays one game at a time, evaluates one leaf
per forward and rebuilds the tree every move. The same simulation count means the same number of
NEW simulations per move here (a reused subtree adds visits on top). `--cache 0` turns our cache
off.

Times are reported both as wall clock and as this process's CPU time: on a shared machine the wall
clock also counts time the process spent waiting for a core, CPU time does not.

    .venv/bin/python benchmarks/selfplay.py [--threads 1] [--sims 100] [--widths 64 256]
                                            [--nets resnet openspiel-mlp] [--cache 16384] [--seed 0]
                                            [--openspiel-python /path/to/venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from alphaloop.collect.selfplay import play_games
from alphaloop.games.registry import new_game
from alphaloop.policies.nets import NetConfig, build_net
from alphaloop.search.mcts import MCTS, MCTSConfig
from alphaloop.search.net_evaluator import SELFPLAY_CACHE, NetEvaluator

OPENSPIEL_STATES_PER_S = 4.2
NETS = {
    "resnet": NetConfig(),
    "openspiel-mlp": NetConfig(kind="mlp", blocks=2, hidden=64, policy_hidden=64),
}


class TimedEvaluator:
    """Wraps an evaluator and adds up the CPU time spent in it (observations, legal masks, cache
    look-ups, the forward pass): everything else is tree search and game logic."""

    def __init__(self, evaluator: NetEvaluator) -> None:
        self.inner, self.seconds = evaluator, 0.0

    def evaluate(self, states):
        start = time.process_time()
        out = self.inner.evaluate(states)
        self.seconds += time.process_time() - start
        return out


def bench(net_name: str, width: int, sims: int, leaf_batch: int, cache: int, seed: int) -> dict:
    torch.manual_seed(seed)
    net = build_net(NETS[net_name], new_game("connect4")).eval()
    evaluator = NetEvaluator(net, cache_size=cache)
    timed = TimedEvaluator(evaluator)
    search = MCTS(timed, MCTSConfig(num_simulations=sims, batch_size=leaf_batch, dirichlet_fraction=0.25,
                                    dirichlet_alpha=1.0), seed=seed)
    wall, cpu = time.perf_counter(), time.process_time()
    records = play_games("connect4", search, width, temperature_moves=8, rng=np.random.default_rng(seed))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    positions = sum(len(r) for r in records)
    leaves = evaluator.positions + evaluator.cache_hits
    return {"net": net_name, "width": width, "positions": positions, "wall": wall, "cpu": cpu,
            "net_calls": evaluator.calls, "leaves_per_call": leaves / max(1, evaluator.calls),
            "hit_rate": evaluator.cache_hits / max(1, leaves), "eval_share": timed.seconds / cpu}


def openspiel_rate(python: str, sims: int, seconds: float) -> dict:
    """OpenSpiel's Python AlphaZero actor, timed in a subprocess under `python`, one thread."""
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    script = Path(__file__).resolve().parent / "_openspiel_actor.py"
    out = subprocess.run([python, str(script), "--sims", str(sims), "--seconds", str(seconds)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256], help="games played in lock-step")
    parser.add_argument("--leaf-batch", type=int, default=8, help="leaves per tree per net call")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=["openspiel-mlp", "resnet"])
    parser.add_argument("--cache", type=int, default=SELFPLAY_CACHE, help="evaluation cache size (0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--openspiel-python", help="interpreter with open_spiel + jax: measure OpenSpiel here too")
    parser.add_argument("--openspiel-seconds", type=float, default=120.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    reference, cpu_reference = OPENSPIEL_STATES_PER_S, OPENSPIEL_STATES_PER_S
    source = f"reference figure {OPENSPIEL_STATES_PER_S} states/s"
    if args.openspiel_python:
        measured = openspiel_rate(args.openspiel_python, args.sims, args.openspiel_seconds)
        reference, cpu_reference = measured["states_per_s"], measured["states_per_cpu_s"]
        source = (f"measured here: {measured['states']} states in {measured['games']} games, "
                  f"{reference:.2f} states/s wall, {cpu_reference:.2f} per CPU-s (jax {measured['jax']})")
        print(f"OpenSpiel Python AlphaZero actor, connect four, {args.sims} sims, mlp 64x2, 1 thread: {source}")

    print(f"connect four self-play, {args.sims} simulations/move, {args.leaf_batch} leaves/game/step, "
          f"cache {args.cache}, {args.threads} thread(s)")
    for name in args.nets:
        params = sum(p.numel() for p in build_net(NETS[name], new_game("connect4")).parameters())
        print(f"  {name}: {NETS[name].model_dump()} ({params:,} params)")
    print(f"{'net':>14} {'games':>5} {'positions':>9} {'wall s':>7} {'cpu s':>6} {'pos/s':>6} {'pos/cpu-s':>9} "
          f"{'vs OpenSpiel':>12} {'net calls':>9} {'leaves/call':>11} {'cache hits':>10} {'evaluator':>9}")
    for name in args.nets:
        for width in args.widths:
            r = bench(name, width, args.sims, args.leaf_batch, args.cache, args.seed)
            rate, cpu_rate = r["positions"] / r["wall"], r["positions"] / r["cpu"]
            print(f"{name:>14} {width:>5} {r['positions']:>9} {r['wall']:>7.1f} {r['cpu']:>6.1f} {rate:>6.0f} "
                  f"{cpu_rate:>9.0f} {rate / reference:>5.0f}x/{cpu_rate / cpu_reference:>4.0f}x "
                  f"{r['net_calls']:>9} {r['leaves_per_call']:>11.0f} {r['hit_rate']:>10.0%} {r['eval_share']:>9.0%}")
    print(f"vs OpenSpiel = wall and per-CPU-second rates over OpenSpiel's Python AlphaZero (connect four, "
          f"{args.sims} simulations, mlp 64x2, 1 actor; {source}); "
          f"evaluator = share of CPU time in leaf evaluation (encoding + cache + forward)")


if __name__ == "__main__":
    main()
