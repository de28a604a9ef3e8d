"""`alphaloop move` and `alphaloop play`: ask a trained game net for moves, or play against it.

Moves are written the way position files write them (`alphaloop.games.positions`): 1-based
digits, a column 1-7 for connect four, a cell 1-9 for tic-tac-toe (row by row from the top left).
A position is the string of moves played from the start ("" = the initial position).

`alphaloop move` reading stdin is an engine on a pipe, as UCI and GTP engines are: one answer line
per input line, written and flushed as soon as that line is read, so a program can write a
position, read the move, and write the next. A bad line gets "?" on stdout (the program reading
answers stays in step) and one line on stderr naming the line and what was wrong; the lines around
it are answered, and only at the end of input does the exit code (2) say that some line was bad.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from alphaloop.errors import UserError
from alphaloop.games.notation import read_position


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
        from alphaloop.rundir import trained_policies

        net_dir = next(reversed(trained_policies(run, f"--run {run}").values()), None)
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
    try:
        return read_position(game, moves)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}") from None


def move_lines(game: str, run: Path, sims: int, position: str | None, lines: Iterable[str]) -> list[str]:
    """The agent's move (1-based) for `position`, or for each line of `lines` if position is None; all
    or nothing: the first bad line raises UserError (`answer_lines` answers around bad lines)."""
    player = _player(load_game_net(game, run), sims)
    if position is not None:
        return [str(player.choose(_position(game, position.strip(), "--position")) + 1)]
    return [str(player.choose(_position(game, line.strip(), f"line {number}")) + 1)
            for number, line in enumerate(lines, 1)]


def answer_lines(player, game: str, lines: Iterable[str], out: TextIO, err: TextIO) -> list[int]:
    """Answer each line of `lines` on `out` as soon as it is read, flushed: the move (1-based), or "?"
    and one line on `err` for a bad line. Returns the numbers of the bad lines."""
    bad = []
    for number, line in enumerate(lines, 1):
        try:
            state = read_position(game, line.strip())
        except ValueError as exc:
            bad.append(number)
            print(f"error: stdin line {number}: {exc}", file=err, flush=True)
            print("?", file=out, flush=True)
            continue
        print(player.choose(state) + 1, file=out, flush=True)
    return bad


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
    """`alphaloop move`: one answer for `--position`, else an answer per stdin line as it arrives;
    UserError (exit code 2) if `--position` or any stdin line was bad, after answering the others."""
    player = _player(load_game_net(game, run), sims)
    if position is not None:
        print(player.choose(_position(game, position.strip(), "--position")) + 1, flush=True)
        return
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")  # undecodable bytes make a bad line, not a crash
    # readline, not `for line in sys.stdin`: answer each line the moment it arrives on a pipe.
    bad = answer_lines(player, game, iter(sys.stdin.readline, ""), sys.stdout, sys.stderr)
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise UserError(f"{len(bad)} stdin line{'s' if len(bad) > 1 else ''} could not be answered "
                        f"(line{'s' if len(bad) > 1 else ''} {shown}; see above)")
