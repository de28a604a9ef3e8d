"""Tree-search speed on connect four: simulations per second, one process, one thread.

1. Plain UCT with random rollouts (UCB1, c = sqrt(2), one child expanded per visit, one random
   play-out per leaf) from the initial position and from a mid-game position: the textbook
   algorithm, comparable with OpenSpiel's Python `MCTSBot` (its game logic is C++, ours is
   Python). With `--openspiel-python PYTHON` (an interpreter with open_spiel, e.g. the venv of
   `make bench-openspiel`) the same searches run with MCTSBot side by side
   (`benchmarks/_openspiel_actor.py --uct`); without it the reference is 10-17k simulations/s,
   measured on a machine of this kind.
2. PUCT with a `UniformEvaluator` (priors uniform, value 0): the tree's own overhead, first for one
   game (per-game list trees), then for many games in lock-step (`search_many`, numpy trees),
   the path self-play takes. Simulations/s there bounds self-play states/s from above:
   states/s <= sims/s / simulations-per-move, before any net time (OpenSpiel's Python AlphaZero:
   4.2 states/s at 100 simulations).

Rates are best-of-`--repeat`, by wall clock and by this process's CPU time (on a shared machine the
wall clock also counts time spent waiting for a core).

    .venv/bin/python benchmarks/mcts.py [--sims 5000] [--games 256] [--repeat 3] [--openspiel-python PYTHON]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from alphaloop.games.connect4 import Connect4State
from alphaloop.search import (
    MCTS,
    GumbelConfig,
    GumbelMCTS,
    MCTSConfig,
    RandomRolloutEvaluator,
    UniformEvaluator,
)

OPENSPIEL_MCTSBOT_SIMS_PER_S = (10_000, 17_000)
OPENSPIEL_ALPHAZERO_STATES_PER_S = 4.2
MID_GAME = "4453452333"   # ten moves in, no immediate win for either side


def best_rate(run, sims: int, repeat: int) -> tuple[float, float]:
    """Best simulations/s by wall clock and by CPU time over `repeat` runs (best-of: the machine is shared)."""
    wall = cpu = 0.0
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        wall = max(wall, sims / (time.perf_counter() - start))
        cpu = max(cpu, sims / max(time.process_time() - start_cpu, 1e-9))
    return wall, cpu


def openspiel_uct(python: str, moves: str, sims: int, repeat: int) -> dict:
    """OpenSpiel's Python MCTSBot with random roll-outs, timed in a subprocess under `python`."""
    script = Path(__file__).resolve().parent / "_openspiel_actor.py"
    out = subprocess.run([python, str(script), "--uct", moves, "--sims", str(sims), "--repeat", str(repeat)],
                         env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=5000, help="simulations per single-game search")
    parser.add_argument("--games", type=int, default=256, help="games searched in lock-step")
    parser.add_argument("--many-sims", type=int, default=100, help="simulations per move in lock-step")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--openspiel-python", help="interpreter with open_spiel: run its MCTSBot side by side")
    args = parser.parse_args()

    lo, hi = OPENSPIEL_MCTSBOT_SIMS_PER_S
    print(f"connect four, 1 thread; OpenSpiel Python MCTSBot reference: {lo:,}-{hi:,} sims/s\n")
    print(f"{'search':58s} {'sims/s':>10s} {'sims/cpu-s':>10s}")
    uct = MCTSConfig(num_simulations=args.sims, selection="uct", batch_size=1, reuse_tree=False)
    for label, moves in (("initial position", ""), (f"mid-game {MID_GAME}", MID_GAME)):
        state = Connect4State.from_moves(moves)
        search = MCTS(RandomRolloutEvaluator(seed=0), uct, seed=0)
        rate, cpu = best_rate(lambda s=search, st=state: s.search(st), args.sims, args.repeat)
        print(f"{'UCT + random rollout, ' + label:58s} {rate:10,.0f} {cpu:10,.0f}")
        if args.openspiel_python:
            theirs = openspiel_uct(args.openspiel_python, moves, args.sims, args.repeat)
            print(f"{'  OpenSpiel Python MCTSBot, same search':58s} {theirs['sims_per_s']:10,.0f} "
                  f"{theirs['sims_per_cpu_s']:10,.0f}   ours / theirs: {rate / theirs['sims_per_s']:.2f}x wall, "
                  f"{cpu / theirs['sims_per_cpu_s']:.2f}x CPU")

    state = Connect4State()
    for batch in (1, 8):
        config = MCTSConfig(num_simulations=args.sims, batch_size=batch, reuse_tree=False)
        search = MCTS(UniformEvaluator(), config, seed=0)
        rate, cpu = best_rate(lambda s=search: s.search(state), args.sims, args.repeat)
        print(f"{f'PUCT + uniform evaluator, 1 game, {batch} leaves/call':58s} {rate:10,.0f} {cpu:10,.0f}")
    gumbel = GumbelMCTS(UniformEvaluator(), GumbelConfig(num_simulations=args.sims), seed=0)
    rate, cpu = best_rate(lambda: gumbel.search(state), args.sims, args.repeat)
    print(f"{'Gumbel + uniform evaluator, 1 game':58s} {rate:10,.0f} {cpu:10,.0f}")

    games = [Connect4State.from_moves(m) for m in ("", "4", "44", "43", "45", "444", "4453", MID_GAME)]
    games = [games[i % len(games)].clone() for i in range(args.games)]
    total = args.games * args.many_sims
    for batch in (1, 4):
        config = MCTSConfig(num_simulations=args.many_sims, batch_size=batch, reuse_tree=False)
        search = MCTS(UniformEvaluator(), config, seed=0)
        rate, cpu = best_rate(lambda s=search: s.search_many(games), total, args.repeat)
        label = f"PUCT + uniform, {args.games} games lock-step, {batch} leaf/game/call"
        print(f"{label:58s} {rate:10,.0f} {cpu:10,.0f}   (<= {cpu / args.many_sims:,.0f} states/cpu-s at "
              f"{args.many_sims} sims; OpenSpiel AlphaZero {OPENSPIEL_ALPHAZERO_STATES_PER_S} states/s)")


if __name__ == "__main__":
    main()
