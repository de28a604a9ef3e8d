"""`alphaloop move` and `alphaloop play`: ask a trained game net for moves, or play against it.

Moves are written the way position files write them (`alphaloop.games.positions`): 1-based
digits, a column 1-7 for connect four, a cell 1-9 for tic-tac-toe (row by row from the top left).
A position is the string of moves played from the start ("" = the initial position).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from alphaloop.errors import UserError


def load_game_net(game: str, run: Path):
    """The newest trained net of run directory `run` (or a net directory itself) for `game`."""
    from alphaloop.games.registry import game_class, game_names
    from alphaloop.policies.nets import CONFIG, PolicyValueNet

    if game not in game_names():
        raise UserError(f"GAME {game!r}: expected one of {', '.join(game_names())}")
    run = Path(run)
    if (run / CONFIG).is_file():
        net_dir = run
    else:
        from alphaloop.runner import load_run_recipe

        recipe = load_run_recipe(run)
        if recipe.env.name != game:
            raise UserError(f"--run {run}: that run plays {recipe.env.name!r}, not {game!r}")
        net_dir = None
        for index, stage in enumerate(recipe.stages):
            result = run / "stages" / f"{index}-{stage.name}" / "result.json"
            if result.is_file() and "policy_dir" in json.loads(result.read_text()):
                net_dir = run / json.loads(result.read_text())["policy_dir"]
        if net_dir is None:
            raise UserError(f"--run {run}: no stage has finished training a net yet")
    net = PolicyValueNet.load(net_dir)
    cls = game_class(game)
    if net.observation_shape != tuple(cls.observation_shape) or net.num_actions != cls.num_actions:
        raise UserError(f"--run {run}: the net there is not a {game} net (observation {net.observation_shape}, "
                        f"{net.num_actions} actions)")
    return net


def _player(net, sims: int):
    from alphaloop.search.players import NetPlayer

    if sims < 0:
        raise UserError(f"--sims: expected an int >= 0 (0 = raw net), got {sims}")
    return NetPlayer(net, sims=sims, seed=0)


def _position(game: str, moves: str, where: str):
    from alphaloop.games.base import IllegalActionError
    from alphaloop.games.registry import from_moves

    try:
        state = from_moves(game, moves)
    except IllegalActionError as exc:
        raise UserError(f"{where}: {exc}") from None
    if state.is_terminal():
        raise UserError(f"{where}: the game is already over after {moves!r}; there is no move to make")
    return state


def move_lines(game: str, run: Path, sims: int, position: str | None, lines: Iterable[str]) -> list[str]:
    """The agent's move (1-based) for `position`, or for each line of `lines` if position is None."""
    player = _player(load_game_net(game, run), sims)
    if position is not None:
        return [str(player.choose(_position(game, position, "--position")) + 1)]
    out = []
    for number, line in enumerate(lines, 1):
        state = _position(game, line.strip(), f"stdin line {number}")
        out.append(str(player.choose(state) + 1))
    return out


def read_human_move(state, ask: Callable[[str], str], say: Callable[[str], None]) -> int | None:
    """Ask until the human gives a legal move (1-based); None if they quit (q, or end of input)."""
    legal = [a + 1 for a in state.legal_actions()]
    what = "column" if state.game_name == "connect4" else "cell"
    while True:
        try:
            text = ask(f"your move ({what} {', '.join(map(str, legal))}; q quits): ").strip().lower()
        except EOFError:
            return None
        if text in ("q", "quit", "exit"):
            return None
        if text.isdigit() and int(text) in legal:
            return int(text) - 1
        say(f"{text!r} is not a legal move: type one of {', '.join(map(str, legal))}")


def play(game: str, run: Path, sims: int, human_first: bool, ask: Callable[[str], str] = input,
         say: Callable[[str], None] = print) -> str:
    """A game in the terminal between a person and the net; returns 'win', 'draw', 'loss' or 'quit'
    (from the person's side)."""
    from alphaloop.games.registry import new_game

    player = _player(load_game_net(game, run), sims)
    state = new_game(game)
    human = 0 if human_first else 1
    unit = "columns" if game == "connect4" else "cells"
    say(f"you play {'first' if human_first else 'second'}; moves are 1-based {unit}")
    while not state.is_terminal():
        say(str(state))
        if state.current_player() == human:
            action = read_human_move(state, ask, say)
            if action is None:
                say("bye")
                return "quit"
        else:
            action = player.choose(state.clone())
            say(f"agent plays {action + 1}")
        state.apply_action(action)
    say(str(state))
    outcome = state.returns()[human]
    result = "win" if outcome > 0 else "loss" if outcome < 0 else "draw"
    say({"win": "you win", "loss": "the agent wins", "draw": "draw"}[result])
    return result


def move_command(game: str, run: Path, sims: int, position: str | None) -> None:
    for line in move_lines(game, run, sims, position, None if position is not None else sys.stdin):
        print(line, flush=True)
