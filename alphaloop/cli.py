"""The `alphaloop` command: run recipes, resume them, evaluate, play, generate position sets, list envs,
(re)build and compare reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alphaloop.errors import UserError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Train agents: imitation first, then reinforcement, with learning and search together.")
console = Console()
DEFAULT_RECIPE = Path("recipes/quickstart.toml")


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
    console.print(f"report: {page}")


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

    if resume is not None:
        if recipe is not None or set_:
            raise UserError("--resume continues a run with its own saved recipe: give no recipe or --set")
        run_dir = resume
        resolved = runner.load_run_recipe(run_dir)
        console.print(f"resuming {run_dir}")
    else:
        from alphaloop.recipe import load_recipe

        resolved = runner.resolve_threads(load_recipe(recipe or _default_recipe(), set_ or []))
        run_dir = runner.prepare_run_dir(resolved, out)
        console.print(f"run directory: {run_dir}")
    warning = runner.warn_if_oversubscribed(resolved.threads)
    if warning:
        console.print(f"[yellow]{warning}")
    runner.run(resolved, run_dir, show_progress=progress)
    _finish(run_dir)


@app.command("eval")
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="a run directory")],
    split: Annotated[list[str] | None, typer.Option(help="train | test | heldout (repeatable)")] = None,
    decoder: Annotated[list[str] | None, typer.Option(help="greedy, sample, maj@K, pass@K (repeatable)")] = None,
    policy: Annotated[list[str] | None, typer.Option(help="expert or a stage name (default: latest)")] = None,
    problems: Annotated[int, typer.Option(help="problems per split")] = 500,
) -> None:
    """Evaluate a run's policies; prints the table and writes it to RUN_DIR/evals/."""
    from alphaloop.cli_eval import eval_run

    records = eval_run(run_dir, split or ["test"], decoder or ["greedy"], policy or ["latest"], problems)
    from alphaloop.report import format_report_card

    console.print(format_report_card({"evals": records}))


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
    """List registered envs and their knobs."""
    from rich.table import Table

    from alphaloop.envs.registry import describe_env, list_envs

    for name, cls in list_envs().items():
        table = Table(title=f"{name}  ({cls.__module__}:{cls.__name__})", title_justify="left")
        for column in ("knob", "type", "default", "description"):
            table.add_column(column)
        for knob, kind, default, description in describe_env(cls):
            table.add_row(str(knob), str(kind), repr(default), str(description or ""))
        console.print(table)


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run directory")]) -> None:
    """(Re)build RUN_DIR/report.html from summary.json and metrics.jsonl."""
    if not (run_dir / "summary.json").is_file():
        raise UserError(f"{run_dir} has no summary.json (not a run directory, or the run has not finished a stage)")
    _finish(run_dir)


def main() -> None:
    try:
        app()
    except UserError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: continue with `alphaloop run --resume RUN_DIR`")
        sys.exit(130)


if __name__ == "__main__":
    main()
