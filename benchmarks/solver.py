"""Connect-four reference speeds: the bitbully solver and our alpha-beta, plus game-API speed.

1. Solver: positions solved per second on a generated end-game set (Pons' Test_L3_R1-like)
   and on an opening set, with move_scores (7 child solves) timed as well.
2. Alpha-beta: nodes per second and seconds per move at each depth, over the first moves
   of self-play games from the empty board.
3. Game API: random playouts per second (apply_action + legal_actions), the MCTS hot path.

    .venv/bin/python benchmarks/solver.py [--positions 200] [--depths 2 4 6 8] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import time

from alphaloop.games.alphabeta import AlphaBetaPlayer
from alphaloop.games.connect4 import Connect4State
from alphaloop.games.positions import generate_positions
from alphaloop.games.solver import move_scores, reset_cache, solve


def bench_solver(kind: str, n: int, seed: int) -> None:
    t0 = time.perf_counter()
    items = generate_positions(kind, n, seed=seed)
    t_gen = time.perf_counter() - t0
    reset_cache()                                # time cold solves, not table look-ups
    t0 = time.perf_counter()
    for moves, score in items:
        assert solve(moves) == score
    t_solve = time.perf_counter() - t0
    reset_cache()
    t0 = time.perf_counter()
    for moves, _ in items:
        move_scores(moves)
    t_scores = time.perf_counter() - t0
    print(f"solver {kind:12s} n={n}: solve {n / t_solve:9.0f} pos/s   move_scores {n / t_scores:8.0f} pos/s"
          f"   generate {n / t_gen:7.0f} pos/s")


def bench_alphabeta(depth: int, seed: int, plies: int = 10) -> None:
    player = AlphaBetaPlayer(depth, seed=seed)
    state = Connect4State()
    t0 = time.perf_counter()
    moves = 0
    for _ in range(plies):
        if state.is_terminal():
            break
        state.apply_action(player.choose(state))
        moves += 1
    dt = time.perf_counter() - t0
    print(f"alphabeta depth {depth}: {player.nodes / dt:9.0f} nodes/s   {dt / moves:7.3f} s/move"
          f"   ({player.nodes} nodes, {moves} moves)")


def bench_playouts(n: int, seed: int) -> None:
    rng = random.Random(seed)
    t0 = time.perf_counter()
    plies = 0
    for _ in range(n):
        state = Connect4State()
        while not state.is_terminal():
            state.apply_action(rng.choice(state.legal_actions()))
            plies += 1
    dt = time.perf_counter() - t0
    print(f"connect4 random playouts: {n / dt:8.0f} games/s   {plies / dt:9.0f} moves/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=200)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    solve("4")                                   # load the opening book outside the timings
    for kind in ("endgame", "opening"):
        bench_solver(kind, args.positions, args.seed)
    for depth in args.depths:
        bench_alphabeta(depth, args.seed)
    bench_playouts(2000, args.seed)


if __name__ == "__main__":
    main()
