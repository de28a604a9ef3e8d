"""What a run directory says about its finished stages: read once here for every reader of runs
(`alphaloop eval`, `alphaloop move/play --run`, `alphaloop serve`).

    RUN/stages/<i>-<name>/result.json   written (atomically) when stage i completes; holds
                                        `policy_dir` or `reward_model_dir` relative to RUN
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alphaloop.errors import UserError


def stage_dirs(run: Path) -> list[Path]:
    """The run's stage directories in recipe order (`stages/<i>-<name>`)."""
    found = []
    for path in (run / "stages").glob("*-*"):
        index = path.name.split("-", 1)[0]
        if path.is_dir() and index.isdigit():
            found.append((int(index), path))
    return [path for _, path in sorted(found)]


def finished_stages(run: Path, arg: str) -> list[tuple[str, dict[str, Any]]]:
    """(stage name, result) of every finished stage, in recipe order; `arg` names the argument the run
    came from in the error when a result cannot be read."""
    finished = []
    for stage in stage_dirs(run):
        result = stage / "result.json"
        if not result.is_file():
            continue
        try:
            done = json.loads(result.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{arg}: {result} cannot be read ({exc})") from None
        if isinstance(done, dict):
            finished.append((stage.name.split("-", 1)[1], done))
    return finished


def trained_policies(run: Path, arg: str, key: str = "policy_dir") -> dict[str, Path]:
    """Stage name -> the directory of the policy (or, with key='reward_model_dir', the reward model) it
    trained, for every finished stage that trained one, in recipe order."""
    return {name: run / done[key] for name, done in finished_stages(run, arg) if isinstance(done.get(key), str)}
