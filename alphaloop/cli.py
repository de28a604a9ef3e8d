"""The `alphaloop` command: run recipes, resume them, evaluate, play, serve, generate position sets, list envs,
(re)build and compare reports.

One error boundary (`main`): a mistake in what the user asked for (`UserError`, or the operating
system refusing a file: missing, not a directory, read-only, disk full) prints one line and exits
with code 2; anything else is a bug in alphaloop and prints one line saying so, with the traceback
behind `--debug` (or ALPHALOOP_DEBUG=1). Messages are printed as plain text, never as Rich markup,
so a path or hint with [brackets] is shown as written.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from alphaloop.errors import UserError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Train agents: imitation first, then reinforcement, with learning and search together.")
console = Console(highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)  # one message, one line: never wrapped
DEFAULT_RECIPE = Path("recipes/quickstart.toml")
DEBUG = {"on": os.environ.get("ALPHALOOP_DEBUG", "") not in ("", "0")}


def say(message: str, style: str = "") -> None:
    """A line on stderr, plain text (no markup interpretation)."""
    errors.print(Text(message, style=style))


@app.callback()
def _options(debug: Annotated[bool, typer.Option("--debug", help="show tracebacks of errors")] = False) -> None:
    if debug:
        DEBUG["on"] = True


def _default_recipe() -> Path:
    if DEFAULT_RECIPE.is_file():
        return DEFAULT_RECIPE
    beside_package = Path(__file__).resolve().parent.parent / DEFAULT_RECIPE
    return beside_package if beside_package.is_file() else DEFAULT_RECIPE


def _finish(run_dir: Path) -> None:
    from alphaloop.report import build_report, format_report_card

    page = build_report(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    console.print(format_report_card(summary))
    console.print(Text(f"report: {page}"))


@app.command()
def run(
    recipe: Annotated[Path | None, typer.Argument(help="recipe TOML (default: recipes/quickstart.toml)")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (default: runs/<recipe name>)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: dotted.path=value (repeatable)")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the run in this directory")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Run a recipe end to end (or continue one with --resume RUN_DIR)."""
    from alphaloop import runner
    from alphaloop.preflight import preflight

    created = False
    if resume is not None:
        if recipe is not None or set_ or out is not None:
            raise UserError("--resume continues a run with its own saved recipe: give no recipe, --set or --out")
        run_dir = resume
        resolved = runner.load_run_recipe(run_dir)
        preflight(resolved, str(run_dir / "recipe.toml"))
        say(f"resuming {run_dir}")
    else:
        from alphaloop.recipe import load_recipe

        source = recipe or _default_recipe()
        loaded = load_recipe(source, set_ or [])
        preflight(loaded, str(source))   # everything checkable is checked before anything is created
        resolved = runner.resolve_threads(loaded)
        run_dir = runner.prepare_run_dir(resolved, out)
        created = True
        say(f"run directory: {run_dir}")
    warning = runner.warn_if_oversubscribed(resolved.threads)
    if warning:
        say(warning, "yellow")
    from alphaloop import interrupt

    interrupt.install()
    try:
        runner.run(resolved, run_dir, show_progress=progress)
    except KeyboardInterrupt:
        say(f"interrupted: continue with `alphaloop run --resume {run_dir}`")
        # Leave at once: the checkpoints and metrics.jsonl are complete on disk, and joining the
        # helper threads the interrupt may have caught mid-operation (TensorBoard's writer, Ray)
        # could hang or end the process with the signal instead of the exit code.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except Exception:
        # A failure found only when a stage started (a model that cannot be loaded, one too big for
        # memory, ...): if this invocation made the run directory and nothing was trained yet,
        # take it away again so the fixed command can simply be rerun.
        if created and not runner.has_progress(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    _finish(run_dir)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    split: Annotated[list[str] | None, typer.Option(help="train | test | heldout (repeatable)")] = None,
    decoder: Annotated[list[str] | None, typer.Option(help="greedy, sample, maj@K, pass@K (repeatable)")] = None,
    policy: Annotated[list[str] | None, typer.Option(help="expert or a stage name (default: latest)")] = None,
    problems: Annotated[int, typer.Option(help="problems per split", min=1, max=1_000_000)] = 500,
) -> None:
    """Evaluate a run's policies; prints the table and writes it to a new file in RUN_DIR/evals/."""
    from alphaloop.cli_eval import eval_run
    from alphaloop.report import format_report_card

    records, path = eval_run(run_dir, split or ["test"], decoder or ["greedy"], policy or ["latest"], problems)
    console.print(format_report_card({"evals": records}))
    console.print(Text(f"written to {path}"))


@app.command()
def move(
    game: Annotated[str, typer.Argument(help="tictactoe or connect4")],
    run: Annotated[Path, typer.Option(help="a run directory (its newest trained net) or a net directory")],
    sims: Annotated[int, typer.Option(help="search simulations; 0 = the raw net's best legal move")] = 0,
    position: Annotated[str | None, typer.Option(help="moves so far, 1-based digits; default: read stdin")] = None,
) -> None:
    """Print the agent's move (1-based) for a position, or one move per stdin line."""
    from alphaloop.cli_games import move_command

    move_command(game, run, sims, position)


@app.command()
def play(
    game: Annotated[str, typer.Argument(help="tictactoe or connect4")],
    run: Annotated[Path, typer.Option(help="a run directory (its newest trained net) or a net directory")],
    sims: Annotated[int, typer.Option(help="search simulations; 0 = the raw net's best legal move")] = 0,
    first: Annotated[bool, typer.Option("--first/--second", help="move first or second")] = True,
) -> None:
    """Play a game against a trained agent in the terminal."""
    from alphaloop.cli_games import play as play_game

    play_game(game, run, sims, first)


@app.command()
def positions(
    game: Annotated[str, typer.Argument(help="connect4")],
    kind: Annotated[str, typer.Option(help="endgame | middle-soon | middle-late | opening (Pons' test sets)")],
    out: Annotated[Path, typer.Option(help="file to write: '<moves> <score>' per line (+ FILE.move-scores)")],
    count: Annotated[int, typer.Option(help="positions to generate")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of the random play that reaches them")] = 0,
    move_scores: Annotated[bool, typer.Option(help="also solve every column (the sidecar evals need)")] = True,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Generate solver-labelled connect-four positions (needs bitbully)."""
    from alphaloop.cli_positions import positions_command

    positions_command(game, kind, count, seed, out, move_scores, progress)


@app.command()
def compare(
    run_a: Annotated[Path, typer.Argument(help="a run directory")],
    run_b: Annotated[Path, typer.Argument(help="another run directory")],
    out: Annotated[Path, typer.Option(help="directory for compare.png and compare.html")],
) -> None:
    """Two game runs' good-move rate and Elo against wall time and self-play games, on the same axes."""
    from alphaloop.cli_positions import compare_command

    compare_command(run_a, run_b, out)


@app.command()
def envs() -> None:
    """List the registered text envs with their knobs, and the board games."""
    from rich.table import Table

    from alphaloop.envs.registry import describe_env, list_envs
    from alphaloop.games.registry import game_class, game_names

    for name, cls in list_envs().items():
        kind = "agent env (multi-turn, tools: " + " ".join(cls.tools) + ")" if getattr(cls, "multi_turn", False) \
            else "text env"
        table = Table(title=Text(f"{name}  ({cls.__module__}:{cls.__name__})  {kind}"), title_justify="left")
        for column in ("knob", "type", "default", "description"):
            table.add_column(column)
        for knob, kind, default, description in describe_env(cls):
            table.add_row(Text(str(knob)), Text(str(kind)), Text(repr(default)), Text(str(description or "")))
        console.print(table)
    table = Table(title=Text("board games  (env.name with policy.kind = 'net'; no knobs)"), title_justify="left")
    for column in ("game", "actions", "observation", "stages"):
        table.add_column(column)
    for name in game_names():
        cls = game_class(name)
        table.add_row(name, str(cls.num_actions), " x ".join(map(str, cls.observation_shape)),
                      "game_imitate, alphazero, game_eval")
    console.print(table)


@app.command()
def serve(
    targets: Annotated[list[str], typer.Argument(help="run, policy or checkpoint directories to serve, each "
                                                      "optionally named NAME=PATH (docs/serving.md)",
                                                 metavar="RUN_OR_CHECKPOINT")],
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=0, max=65535)] = 8000,
    threads: Annotated[int, typer.Option(help="torch threads for the models", min=1, max=1024)] = 1,
    runs: Annotated[Path | None, typer.Option(help="directory of runs for the web app's Runs page "
                                                   "(default: ./runs if it exists)")] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="log one line per request (off: under load "
                                                                  "it costs throughput)")] = False,
) -> None:
    """Serve LM policies behind an OpenAI-compatible API (/v1/chat/completions, ...), game agents
    (/v1/games/GAME/move), and a web app (/) to chat with them, play them and browse the runs."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise UserError(f"serving needs the `serve` extra ({exc.name} is missing): pip install 'alphaloop[serve]'") \
            from None
    if runs is None:
        runs = Path("runs").resolve() if Path("runs").is_dir() else None
    elif not runs.is_dir():
        raise UserError(f"--runs {runs}: not a directory (a directory of run directories, e.g. runs)")
    else:
        runs = runs.resolve()
    import torch

    from alphaloop.serve.app import serve as run_server

    torch.set_num_threads(threads)
    try:
        run_server(targets, host, port, announce=say, runs_dir=runs, access_log=access_log)
    except KeyboardInterrupt:
        say("stopped")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """(Re)build RUN_DIR/report.html from summary.json and metrics.jsonl."""
    if not (run_dir / "summary.json").is_file():
        raise UserError(f"{run_dir} has no summary.json (not a run directory, or the run has not finished a stage)")
    _finish(run_dir)


def _os_error(exc: OSError) -> str:
    """An operating-system refusal as one line: what, and which file."""
    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno == 28:
        return f"no space left on the device{where} (free some space, or write elsewhere with --out)"
    return f"{exc.strerror or exc}{where}"


def main() -> None:
    try:
        app()  # standalone: a bad flag or argument gets click's usage message and exit code 2
    except UserError as exc:
        if DEBUG["on"]:
            traceback.print_exc()
        say(f"error: {exc}", "bold red")
        sys.exit(2)
    except OSError as exc:  # the filesystem refused: a path that is a file, read-only, full, ...
        if DEBUG["on"]:
            traceback.print_exc()
        say(f"error: {_os_error(exc)}", "bold red")
        sys.exit(2)
    except KeyboardInterrupt:
        say("interrupted")
        sys.exit(130)
    except MemoryError:
        say("error: out of memory: the model, batch or search is too big for this machine; make it smaller "
            "(e.g. [policy.arch], batch_size, games_per_round)", "bold red")
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 -- the boundary: everything else is a bug of ours
        if DEBUG["on"]:
            traceback.print_exc()
        if "allocate memory" in str(exc) or "out of memory" in str(exc).lower():  # torch's allocators
            say(f"error: out of memory ({' '.join(str(exc).split())[:160]}): the model, batch or search is too "
                "big for this machine; make it smaller (e.g. [policy.arch], batch_size, games_per_round)",
                "bold red")
            sys.exit(2)
        say(f"internal error: {type(exc).__name__}: {exc}", "bold red")
        say("this is a bug in alphaloop, not in what you asked for; rerun with --debug for the traceback and "
            "please report it")
        sys.exit(1)


if __name__ == "__main__":
    main()
