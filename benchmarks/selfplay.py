"""Self-play speed on connect four: positions (moves played) per second, games in lock-step.

Each setting plays `width` complete self-play games at once through `selfplay.play_games` with
PUCT search of `--sims` simulations per move (Dirichlet root noise, temperature 1 for 8 moves) and a
small untrained residual net (NetConfig defaults: 32 channels, 2 blocks). All games' leaves go to the
net in one batched forward per search step, so the width shows what batching buys.

Reference: OpenSpiel's Python AlphaZero on connect four, 100 simulations, about 4.2 states/s
(the figure this project compares against); the ratio column is ours / 4.2.

    .venv/bin/python benchmarks/selfplay.py [--threads 1] [--sims 100] [--widths 1 16 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from alphaloop.games.registry import new_game
from alphaloop.games.selfplay import play_games
from alphaloop.policies.nets import NetConfig, build_net
from alphaloop.search.mcts import MCTS, MCTSConfig
from alphaloop.search.net_evaluator import NetEvaluator

OPENSPIEL_STATES_PER_S = 4.2


def bench(width: int, sims: int, leaf_batch: int, seed: int, config: NetConfig) -> dict:
    torch.manual_seed(seed)
    net = build_net(config, new_game("connect4")).eval()
    evaluator = NetEvaluator(net)
    search = MCTS(evaluator, MCTSConfig(num_simulations=sims, batch_size=leaf_batch, dirichlet_fraction=0.25,
                                        dirichlet_alpha=1.0), seed=seed)
    start = time.perf_counter()
    records = play_games("connect4", search, width, temperature_moves=8, rng=np.random.default_rng(seed))
    seconds = time.perf_counter() - start
    positions = sum(len(r) for r in records)
    return {"width": width, "positions": positions, "seconds": seconds, "rate": positions / seconds,
            "net_calls": evaluator.calls, "leaves_per_call": evaluator.positions / max(1, evaluator.calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 16, 64],
                        help="games played in lock-step")
    parser.add_argument("--leaf-batch", type=int, default=8, help="leaves per tree per net call")
    parser.add_argument("--kind", choices=["resnet", "mlp"], default="resnet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = NetConfig(kind=args.kind)
    params = sum(p.numel() for p in build_net(config, new_game("connect4")).parameters())

    print(f"connect four self-play, {args.sims} simulations/move, {args.kind} net "
          f"({config.channels} ch x {config.blocks} blocks, {params:,} params), {args.threads} thread(s)")
    print(f"{'lock-step games':>15} {'positions':>9} {'seconds':>8} {'positions/s':>11} {'net calls':>9} "
          f"{'leaves/call':>11} {'vs OpenSpiel':>12}")
    for width in args.widths:
        r = bench(width, args.sims, args.leaf_batch, args.seed, config)
        print(f"{r['width']:>15} {r['positions']:>9} {r['seconds']:>8.1f} {r['rate']:>11.1f} "
              f"{r['net_calls']:>9} {r['leaves_per_call']:>11.1f} "
              f"{r['rate'] / OPENSPIEL_STATES_PER_S:>11.1f}x")
    print(f"reference: OpenSpiel Python AlphaZero, connect four, 100 simulations: "
          f"{OPENSPIEL_STATES_PER_S} states/s")


if __name__ == "__main__":
    main()
