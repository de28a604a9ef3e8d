"""Self-play speed on connect four: positions (moves played) per second, at 1 game in flight and
at the lock-step width, against OpenSpiel's Python AlphaZero actor measured in the same run.

Each setting plays whole self-play games through `selfplay.play_games` with the `alphazero`
stage's search (its defaults: PUCT, c_puct, Dirichlet root noise, `search_batch` leaves per tree
per net call, temperature 1 for `temperature_moves` moves, tree reuse) at `--sims` simulations
per move (default: the stage's) and an untrained net. At width w, w games are played at once and
all their leaves go to the net in one batched forward per search step; width 1 is one game at a
time. The widths default to 1 and the stage's `games_per_round` (the lock-step width of a real
run). Ours repeats its games until `--min-seconds` have passed. Nets:

  resnet         NetConfig defaults: 32 channels, 2 residual blocks (the project's connect-four net)
  openspiel-mlp  OpenSpiel AlphaZero's "mlp" model at width 64, depth 2 (torso 2 x dense 64 + ReLU,
                 policy head dense 64 + ReLU -> 7, value head dense 64 + ReLU -> 1 -> tanh)

OpenSpiel side by side: with `--openspiel-python PYTHON` (the venv of `make bench-openspiel`)
each width is also played by OpenSpiel's own Python AlphaZero actor (`benchmarks/_openspiel_actor.py`:
its model, evaluator with its LRU cache, bots and move rule) at the same simulation count,
temperature moves and net (openspiel-mlp), one thread, with EQUAL GAMES IN FLIGHT: at width 1
whole games for `--openspiel-seconds`, at width w exactly w games kept going in turn (its bots
search one position at a time and evaluate one leaf per forward, so this is how one actor keeps
w games going; it takes about w x a game's time). The ratio (ours / OpenSpiel, wall clock and per
CPU-second) is printed for the openspiel-mlp rows only, the net both sides run. Without an
OpenSpiel interpreter only our figures are printed, with no ratio. The same simulation count
means the same number of NEW simulations per move here (a reused subtree adds visits on top).
`--cache 0` turns our evaluation cache off.

Times are reported both as wall clock and as this process's CPU time: on a shared machine the wall
clock also counts time the process spent waiting for a core, CPU time does not.

    .venv/bin/python benchmarks/selfplay.py [--threads 1] [--sims 32] [--widths 1 64]
                                            [--nets openspiel-mlp resnet] [--cache 16384] [--seed 0]
                                            [--openspiel-python .venv-openspiel/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

from alphaloop.collect.selfplay import play_games  # noqa: E402
from alphaloop.games.registry import new_game  # noqa: E402
from alphaloop.policies.nets import NetConfig, build_net  # noqa: E402
from alphaloop.search.mcts import MCTS, MCTSConfig  # noqa: E402
from alphaloop.search.net_evaluator import SELFPLAY_CACHE, NetEvaluator  # noqa: E402
from alphaloop.stages.alphazero import AlphaZeroStageConfig  # noqa: E402

NETS = {
    "resnet": NetConfig(),
    "openspiel-mlp": NetConfig(kind="mlp", blocks=2, hidden=64, policy_hidden=64),
}


def stage_default(name: str) -> Any:
    """The `alphazero` stage's default for one of its settings: what a recipe runs unless it says otherwise."""
    return AlphaZeroStageConfig.model_fields[name].default


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


def search_for(net_name: str, sims: int, cache: int, seed: int) -> tuple[MCTS, NetEvaluator, TimedEvaluator]:
    """The alphazero stage's self-play search (its default settings, `sims` simulations) over a fresh net."""
    torch.manual_seed(seed)
    net = build_net(NETS[net_name], new_game("connect4")).eval()
    evaluator = NetEvaluator(net, cache_size=cache)
    timed = TimedEvaluator(evaluator)
    config = MCTSConfig(num_simulations=sims, c_puct=stage_default("c_puct"), batch_size=stage_default("search_batch"),
                        dirichlet_alpha=stage_default("dirichlet_alpha"),
                        dirichlet_fraction=stage_default("dirichlet_fraction"))
    return MCTS(timed, config, seed=seed), evaluator, timed


def bench(net_name: str, width: int, sims: int, cache: int, seed: int, min_seconds: float = 0.0) -> dict:
    """Play batches of `width` lock-step games until `min_seconds` have passed (at least one batch)."""
    search, evaluator, timed = search_for(net_name, sims, cache, seed)
    rng = np.random.default_rng(seed)
    positions = games = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while games == 0 or time.perf_counter() - wall < min_seconds:
        records = play_games("connect4", search, width, temperature_moves=stage_default("temperature_moves"), rng=rng)
        positions, games = positions + sum(len(r) for r in records), games + width
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    leaves = evaluator.positions + evaluator.cache_hits
    return {"net": net_name, "width": width, "games": games, "positions": positions, "wall": wall, "cpu": cpu,
            "net_calls": evaluator.calls, "leaves_per_call": leaves / max(1, evaluator.calls),
            "hit_rate": evaluator.cache_hits / max(1, leaves), "eval_share": timed.seconds / max(cpu, 1e-9)}


def openspiel_args(sims: int, games_in_flight: int, seconds: float) -> list[str]:
    """The `_openspiel_actor.py` arguments that mirror our setting at `games_in_flight` games."""
    return ["--sims", str(sims), "--games", str(games_in_flight), "--seconds", str(seconds),
            "--temperature-drop", str(stage_default("temperature_moves")), "--model", "mlp", "--width", "64",
            "--depth", "2"]


def openspiel_rate(python: str, sims: int, games_in_flight: int, seconds: float) -> dict:
    """OpenSpiel's Python AlphaZero actor at `games_in_flight` games, timed in a subprocess (one thread)."""
    env = dict(os.environ, XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
               OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    script = Path(__file__).resolve().parent / "_openspiel_actor.py"
    out = subprocess.run([python, str(script), *openspiel_args(sims, games_in_flight, seconds)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sims", type=int, default=stage_default("simulations"))
    parser.add_argument("--widths", type=int, nargs="+", default=[1, stage_default("games_per_round")],
                        help="games in flight (played in lock-step)")
    parser.add_argument("--nets", nargs="+", choices=sorted(NETS), default=["openspiel-mlp", "resnet"])
    parser.add_argument("--cache", type=int, default=SELFPLAY_CACHE, help="evaluation cache size (0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=5.0, help="ours: repeat a width's games this long")
    parser.add_argument("--openspiel-python", help="interpreter with open_spiel + jax: measure OpenSpiel here too")
    parser.add_argument("--openspiel-seconds", type=float, default=60.0, help="OpenSpiel at 1 game in flight")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(machine())
    print(f"connect four self-play, {args.sims} simulations/move, {stage_default('search_batch')} leaves/game/step, "
          f"{stage_default('temperature_moves')} temperature moves, cache {args.cache}, {args.threads} thread(s)")
    for name in args.nets:
        params = sum(p.numel() for p in build_net(NETS[name], new_game("connect4")).parameters())
        print(f"  {name}: {NETS[name].model_dump()} ({params:,} params)")
    ratio_header = f" {'vs OpenSpiel':>12}" if args.openspiel_python else ""
    header = (f"{'net':>14} {'width':>5} {'games':>5} {'positions':>9} {'wall s':>7} {'cpu s':>6} {'pos/s':>6} "
              f"{'pos/cpu-s':>9}{ratio_header} {'net calls':>9} {'leaves/call':>11} {'cache hits':>10} "
              f"{'evaluator':>9}")
    theirs: dict[int, dict] = {}
    rows = []
    for width in args.widths:
        for name in args.nets:
            r = bench(name, width, args.sims, args.cache, args.seed, args.min_seconds)
            rate, cpu_rate = r["positions"] / r["wall"], r["positions"] / r["cpu"]
            versus = ""
            if args.openspiel_python:
                if width not in theirs:  # measured right after ours at the same width: paired in time
                    theirs[width] = openspiel_rate(args.openspiel_python, args.sims, width, args.openspiel_seconds)
                t = theirs[width]
                versus = (f" {rate / t['states_per_s']:>5.0f}x/{cpu_rate / t['states_per_cpu_s']:>4.0f}x"
                          if name == "openspiel-mlp" else f" {'-':>12}")
            rows.append(f"{name:>14} {width:>5} {r['games']:>5} {r['positions']:>9} {r['wall']:>7.1f} {r['cpu']:>6.1f} "
                        f"{rate:>6.0f} {cpu_rate:>9.0f}{versus} {r['net_calls']:>9} {r['leaves_per_call']:>11.0f} "
                        f"{r['hit_rate']:>10.0%} {r['eval_share']:>9.0%}")
            print(rows[-1] if len(rows) > 1 else f"{header}\n{rows[-1]}", flush=True)
    for width, t in theirs.items():
        print(f"OpenSpiel Python AlphaZero actor, {width} game(s) in flight, mlp 64x2, 1 thread (jax {t['jax']}): "
              f"{t['states']} states in {t['games']} games, {t['wall_s']:.1f} s, {t['states_per_s']:.2f} states/s "
              f"wall, {t['states_per_cpu_s']:.2f} per CPU-s")
    if theirs:
        print("vs OpenSpiel = our wall and per-CPU-second rates over OpenSpiel's at the same games in flight, "
              "openspiel-mlp rows only (the same net)")
    else:
        print("no OpenSpiel interpreter given (--openspiel-python): our figures only, no ratio")
    print("evaluator = share of CPU time in leaf evaluation (encoding + cache + forward)")


if __name__ == "__main__":
    main()
