"""Recipes: a TOML file naming an env, a policy and an ordered list of stages.

The schema is pydantic with `extra="forbid"` everywhere, so a typo is an error rather than a
silently ignored key. `--set dotted.path=value` edits the parsed TOML before validation, so
overrides are validated exactly like the file itself.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SerializeAsAny, ValidationError, model_validator

from alphaloop.errors import UserError
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


def _describe_error(source: str, err: dict[str, Any]) -> str:
    loc = list(err["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    given = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{source}: {path}: unknown key (check the spelling; allowed keys are in the docs/`alphaloop envs`)"
    if kind == "missing":
        return f"{source}: {path}: required field is missing"
    return f"{source}: {path}: {err['msg']} (given: {given!r})"


def validate_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate parsed TOML into a Recipe; raise UserError naming file, field path, given and allowed."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        lines = [_describe_error(source, e) for e in exc.errors()]
        raise UserError("invalid recipe:\n  " + "\n  ".join(lines)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file, apply `--set` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
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
