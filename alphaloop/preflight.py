"""Checks a recipe needs the machine for, run before a run directory is created: the env's code
imports and accepts its knobs, and the files the recipe names exist.

`load_recipe` already checked everything the recipe says by itself (types, ranges, unknown keys,
stages against the env family and against each other); together they find every mistake that can
be found without training, so a typo never costs the earlier stages' training time and never
leaves a half-made run directory behind.
"""

from __future__ import annotations

import re
from pathlib import Path

from alphaloop.envs.registry import make_env
from alphaloop.errors import UserError
from alphaloop.games.registry import game_names
from alphaloop.recipe import Recipe

# 'org/name' (or 'name'): what Hugging Face hub model ids look like, as opposed to a local path.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def preflight(recipe: Recipe, source: str = "recipe") -> None:
    """Raise one UserError listing every problem found (nothing is created or trained)."""
    problems = []
    env = recipe.env
    if env.name in game_names():
        if env.knobs:
            problems.append(f"env.knobs: the board game {env.name!r} takes no knobs, got {', '.join(env.knobs)}")
    else:
        try:
            make_env(env.name, split="train", **env.knobs)
        except (ValueError, TypeError, ImportError) as exc:
            problems.append(f"env: {exc}")
        except Exception as exc:  # the env's own code failed while building it
            problems.append(f"env {env.name!r}: building it failed: {type(exc).__name__}: {exc}")
    pretrained = recipe.policy.pretrained
    if pretrained and recipe.policy.kind == "lm":
        path = Path(pretrained).expanduser()
        if path.exists() and not (path / "config.json").is_file():
            problems.append(f"policy.pretrained: {pretrained!r} has no config.json (expected a Hugging Face model "
                            "directory, e.g. a stage's policy/ of an earlier run)")
        elif not path.exists() and not HUB_ID.match(pretrained):
            problems.append(f"policy.pretrained: {pretrained!r} does not exist (expected a model directory, e.g. "
                            "runs/<name>/stages/0-imitate/policy, or a Hugging Face model id)")
    if problems:
        raise UserError(f"{source}:\n  " + "\n  ".join(problems))
