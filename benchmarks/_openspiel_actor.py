"""OpenSpiel's Python AlphaZero actor and MCTSBot, timed: runs under an interpreter that has OpenSpiel.

Not part of alphaloop (it imports neither alphaloop nor torch): `benchmarks/selfplay.py
--openspiel-python PYTHON` runs it in a subprocess, so that the comparison is side by side on one
machine. It builds OpenSpiel's own model, evaluator and bots exactly as its actor process does
(`open_spiel.python.algorithms.alpha_zero.alpha_zero`: `_init_model_from_config`,
`AlphaZeroEvaluator` with its LRU cache, two `MCTSBot`s with PUCT and Dirichlet noise) and plays
games with its `_play_game`, the actor's loop without the replay queue, counting states (moves
played). The config mirrors OpenSpiel's example defaults (uct_c 2, Dirichlet 0.25 / alpha 1,
temperature 1 for the first `--temperature-drop` moves) at the simulation count and net given.
Prints one JSON line.

`--games N` keeps N games in flight, as many as our lock-step self-play plays at once: OpenSpiel's
bots search one position at a time, so one actor process keeps N games going by taking them in
turn, one move each (`play_in_flight`: `_play_game`'s move, the same bots and evaluator, its LRU
cache shared by all N), until all N have ended; N = 1 plays whole games with `_play_game` until
`--seconds` have passed.

`--uct MOVES` instead times OpenSpiel's Python `MCTSBot` with random roll-outs (UCT, c = sqrt(2),
one roll-out per leaf, `RandomRolloutEvaluator`) searching the connect-four position reached by
MOVES (1-based columns, "" = the initial position): best simulations/s over `--repeat` searches
(`benchmarks/mcts.py --openspiel-python PYTHON`, for the same search of ours).

    PYTHON benchmarks/_openspiel_actor.py --sims 100 --width 64 --depth 2 --seconds 60
    PYTHON benchmarks/_openspiel_actor.py --sims 32 --games 64 --temperature-drop 4
    PYTHON benchmarks/_openspiel_actor.py --uct "" --sims 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


class _Quiet:
    def print(self, *args) -> None:
        pass

    opt_print = print


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="connect_four")
    parser.add_argument("--sims", type=int, default=100)
    parser.add_argument("--model", default="mlp", choices=["mlp", "conv2d", "resnet"])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="play whole games until this much time has passed")
    parser.add_argument("--games", type=int, default=1, help="games in flight (> 1: play exactly this many, in turn)")
    parser.add_argument("--temperature-drop", type=int, default=10, help="moves sampled before playing the best")
    parser.add_argument("--uct", metavar="MOVES", help="time MCTSBot + random roll-outs from this position instead")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.uct is not None:
        print(json.dumps(uct_rate(args.uct, args.sims, args.repeat)))
        return

    import jax
    import numpy as np
    import pyspiel
    from open_spiel.python.algorithms.alpha_zero import alpha_zero as az
    from open_spiel.python.algorithms.alpha_zero import evaluator as evaluator_lib

    game = pyspiel.load_game(args.game)
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as path:
        config = az.Config(
            game=args.game, path=path, learning_rate=0.001, weight_decay=1e-4, decouple_weight_decay=False,
            train_batch_size=256, replay_buffer_size=2**14, replay_buffer_reuse=False, max_steps=0,
            checkpoint_freq=100, actors=1, evaluators=0, evaluation_window=100, eval_levels=7, uct_c=2.0,
            max_simulations=args.sims, policy_alpha=1.0, policy_epsilon=0.25, temperature=1.0,
            temperature_drop=args.temperature_drop, nn_model=args.model, nn_width=args.width, nn_depth=args.depth,
            observation_shape=game.observation_tensor_shape(), output_size=game.num_distinct_actions(),
            verbose=False, quiet=True)
        model = az._init_model_from_config(config)
        evaluator = evaluator_lib.AlphaZeroEvaluator(game, model)
        bots = (az._init_bot(config, game, evaluator, False), az._init_bot(config, game, evaluator, False))
        az._play_game(_Quiet(), 0, game, bots, config.temperature, config.temperature_drop)  # warm-up
        games = states = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        if args.games > 1:
            games, states = args.games, play_in_flight(game, bots, args.games, config.temperature,
                                                       config.temperature_drop)
        while args.games == 1 and time.perf_counter() - start < args.seconds:
            trajectory = az._play_game(_Quiet(), games + 1, game, bots, config.temperature, config.temperature_drop)
            games, states = games + 1, states + len(trajectory.states)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(json.dumps({"games": games, "games_in_flight": args.games, "states": states, "wall_s": wall,
                      "cpu_s": cpu, "states_per_s": states / wall, "states_per_cpu_s": states / cpu,
                      "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}))


def play_in_flight(game, bots, n: int, temperature: float, temperature_drop: int) -> int:
    """Play `n` games to the end, one move of each in turn (OpenSpiel's `_play_game` move: search,
    visit-count policy, sample before `temperature_drop` moves else the most visited, the same
    trajectory record); returns the states (moves) played."""
    import numpy as np

    states = [game.new_initial_state() for _ in range(n)]
    trajectories: list[list[tuple]] = [[] for _ in range(n)]
    active = list(range(n))
    while active:
        for i in active:
            state = states[i]
            root = bots[state.current_player()].mcts_search(state)
            policy = np.zeros(game.num_distinct_actions())
            for child in root.children:
                policy[child.action] = child.explore_count
            policy = policy ** (1 / temperature)
            policy /= policy.sum()
            if len(trajectories[i]) >= temperature_drop:
                action = root.best_child().action
            else:
                action = np.random.choice(len(policy), p=policy)
            trajectories[i].append((state.observation_tensor(), state.current_player(), state.legal_actions_mask(),
                                    action, policy, root.total_reward / root.explore_count))
            state.apply_action(action)
        active = [i for i in active if not states[i].is_terminal()]
    return sum(map(len, trajectories))


def uct_rate(moves: str, sims: int, repeat: int) -> dict:
    """Best simulations/s (wall, CPU) of one MCTSBot search from the position after `moves`."""
    import math

    import numpy as np
    import pyspiel
    from open_spiel.python.algorithms import mcts

    game = pyspiel.load_game("connect_four")
    state = game.new_initial_state()
    for move in moves:
        state.apply_action(int(move) - 1)
    rng = np.random.RandomState(0)
    bot = mcts.MCTSBot(game, math.sqrt(2), sims, mcts.RandomRolloutEvaluator(1, rng), random_state=rng)
    wall = cpu = 0.0
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        bot.mcts_search(state)
        wall = max(wall, sims / (time.perf_counter() - start))
        cpu = max(cpu, sims / max(time.process_time() - cpu_start, 1e-9))
    return {"sims_per_s": wall, "sims_per_cpu_s": cpu}


if __name__ == "__main__":
    main()
