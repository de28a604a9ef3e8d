"""Recipes: a TOML file naming an env, a policy and an ordered list of stages.

The schema is pydantic with `extra="forbid"` everywhere, so a typo is an error rather than a
silently ignored key. `--set dotted.path=value` edits the parsed TOML before validation, so
overrides are validated exactly like the file itself.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BaseModel, BeforeValidator, Field, SerializeAsAny, ValidationError, model_validator

from alphaloop.errors import UserError
from alphaloop.games.registry import game_names
from alphaloop.specs import EnvSpec, PolicySpec, RunSpec, ScaleSpec, StageConfig, Strict
from alphaloop.stages import STAGES


def stage_config(item: Any) -> StageConfig:
    """One `[[stages]]` table validated by its kind's config class (`alphaloop.stages.STAGES`)."""
    if isinstance(item, StageConfig):
        return item
    if not isinstance(item, dict):
        raise ValueError(f"expected a [[stages]] table, got {item!r}")
    kind = item.get("kind")
    if kind not in STAGES:
        raise ValueError(f"kind: unknown stage kind {kind!r}; expected one of {', '.join(STAGES)}")
    return STAGES[kind].config.model_validate(item)


# SerializeAsAny: a stage's own fields are written back too (recipe.toml in the run directory).
AnyStage = Annotated[SerializeAsAny[StageConfig], BeforeValidator(stage_config)]


class Recipe(RunSpec):
    """A whole recipe: the run's settings (`specs.RunSpec`) and its stages, each validated by its kind."""

    stages: list[AnyStage] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_stage_names(self) -> Recipe:
        seen: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.name is None:
                stage.name = stage.kind if stage.kind not in seen else f"{stage.kind}{i}"
            if stage.name in seen or stage.name == "expert":
                raise ValueError(f"stages.{i}.name: {stage.name!r} is used twice (or reserved); give it a unique name")
            seen.add(stage.name)
        return self

    @model_validator(mode="after")
    def _stages_fit_the_recipe(self) -> Recipe:
        # Everything that can be checked without training is checked here, before a run directory
        # exists: each stage's env family and policy kind, and its references to other stages.
        game = self.env.name in game_names()
        problems, trained = [], []
        for i, stage in enumerate(self.stages):
            spec = STAGES[stage.kind]
            where = f"stages.{i} ({stage.kind})"
            if spec.env == "game" and not game:
                problems.append(f"{where} plays a board game: env.name must be one of {', '.join(game_names())}, "
                                f"got {self.env.name!r}")
            elif spec.env == "text" and game:
                problems.append(f"{where} trains or evaluates a language model on a text env, and env.name "
                                f"{self.env.name!r} is a board game (use game_imitate / alphazero / game_eval)")
            elif spec.env == "game" and self.policy.kind != "net":
                problems.append(f"{where} trains a policy-value net: set policy.kind = 'net' (and optionally "
                                f"[policy.net]), got {self.policy.kind!r}")
            elif spec.env == "text" and self.policy.kind != "lm":
                problems.append(f"{where} needs a language model: set policy.kind = 'lm', got {self.policy.kind!r}")
            problems += [f"stages.{i}.{problem}" for problem in stage.check(self, list(trained))]
            if spec.trains:
                trained.append(stage.name)
        if problems:
            raise ValueError("\n  ".join(problems))
        return self

    @model_validator(mode="after")
    def _scale_has_a_stage_to_scale(self) -> Recipe:
        # Only some stages spread work over workers; a setting that would change nothing is an error,
        # like an unknown key, rather than a silent no-op.
        spreading = [kind for kind, stage in STAGES.items() if stage.uses_workers]
        if self.scale.spreads and not any(stage.kind in spreading for stage in self.stages):
            raise ValueError(f"scale: backend {self.scale.backend!r} with {self.scale.workers} worker(s) spreads "
                             f"the work of {' and '.join(repr(k) for k in spreading)} stages only, and this recipe "
                             "has none (its stages run in this process); remove [scale] or add such a stage")
        return self


__all__ = ["Recipe", "EnvSpec", "PolicySpec", "ScaleSpec", "Strict", "load_recipe", "validate_recipe",
           "apply_override", "recipe_to_toml", "dumps_toml"]


def parse_value(text: str) -> Any:
    """Parse an override value as TOML (numbers, booleans, strings, lists); bare words are strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.path=value` override in place; list elements are addressed by index."""
    if "=" not in assignment:
        raise UserError(f"--set {assignment!r}: expected dotted.path=value, e.g. stages.0.steps=200")
    path, _, raw = assignment.partition("=")
    keys = path.strip().split(".")
    node: Any = data
    for depth, key in enumerate(keys[:-1]):
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise UserError(f"--set {path}: {where!r} is not an index of a list of {len(node)} items")
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
            if not isinstance(node, dict | list):
                raise UserError(f"--set {path}: {where!r} is a value, not a table")
    last = keys[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise UserError(f"--set {path}: {last!r} is not an index of a list of {len(node)} items")
        node[int(last)] = parse_value(raw.strip())
    else:
        node[last] = parse_value(raw.strip())


def _model_at(data: Any, loc: list[Any]) -> type[BaseModel] | None:
    """The pydantic model that validates the table at `loc` (e.g. ['stages', 1] -> that stage's config)."""
    model: type[BaseModel] | None = Recipe
    node = data
    keys = list(loc)
    while keys and model is not None:
        key = keys.pop(0)
        node = node.get(key) if isinstance(node, dict) else None
        if model is Recipe and key == "stages" and keys:
            index = keys.pop(0)
            item = node[index] if isinstance(node, list) and isinstance(index, int) and index < len(node) else None
            kind = item.get("kind") if isinstance(item, dict) else None
            model, node = (STAGES[kind].config if kind in STAGES else None), item
            continue
        field = model.model_fields.get(str(key))
        annotation = field.annotation if field else None
        candidates = [annotation, *get_args(annotation)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _unknown_key(data: Any, loc: list[Any]) -> str:
    """'unknown key' with the allowed keys of that table and the nearest one, if any is near."""
    model = _model_at(data, loc[:-1])
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return f"unknown key; {hint}allowed keys: {', '.join(allowed)}"


def _describe_error(source: str, err: dict[str, Any], data: Any) -> str:
    loc = list(err["loc"])
    path = ".".join(str(p) for p in loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{source}: {path}: {_unknown_key(data, loc)}"
    if kind == "missing":
        return f"{source}: {path}: required field is missing"
    message = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across the recipe: its message names the fields itself
        return f"{source}: {message}"
    field, sep, rest = message.partition(": ")
    model = _model_at(data, loc)
    if sep and (field == "kind" or (model is not None and field in model.model_fields)):  # about one field
        return f"{source}: {path}.{field}: {rest}"
    given = err.get("input")
    if isinstance(given, dict):  # the whole table: the path already says which
        return f"{source}: {path}: {message}"
    shown = repr(given) if len(repr(given)) <= 200 else repr(given)[:200] + "..."
    return f"{source}: {path}: {message} (given: {shown})"


def validate_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate parsed TOML into a Recipe; raise UserError naming file, field path, given and allowed."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a TOML table of recipe settings, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(source, e, data) for e in exc.errors()]
        raise UserError("invalid recipe:\n  " + "\n  ".join(lines)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file, apply `--set` overrides, validate."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"recipe {path}: is a directory, expected a recipe TOML file")
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"recipe {path}: not a text file (expected UTF-8 TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    for assignment in overrides or []:
        apply_override(data, assignment)
    return validate_recipe(data, str(path))


def recipe_to_toml(recipe: Recipe) -> str:
    """Serialise a resolved recipe (defaults filled in) as TOML, for the run directory."""
    return dumps_toml(recipe.model_dump(mode="json", exclude_none=True))


def dumps_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for recipe-shaped data (tables, arrays of tables, scalars, lists of scalars)."""
    out: list[str] = []

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def table(prefix: str, d: dict[str, Any], array: bool = False) -> None:
        simple = {k: v for k, v in d.items() if not isinstance(v, dict) and not _is_table_list(v)}
        if prefix:
            out.append(f"\n[[{prefix}]]" if array else f"\n[{prefix}]")
        out.extend(f"{k} = {scalar(v)}" for k, v in simple.items())
        for k, v in d.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                table(name, v)
            elif _is_table_list(v):
                for item in v:
                    table(name, item, array=True)

    table("", data)
    return "\n".join(out).lstrip() + "\n"


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)
