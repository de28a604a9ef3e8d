"""Recipes: a TOML file naming an env, a policy and an ordered list of stages.

The schema is pydantic with `extra="forbid"` everywhere, so a typo is an error rather than a
silently ignored key. `--set dotted.path=value` edits the parsed TOML before validation, so
overrides are validated exactly like the file itself.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alphaloop.errors import UserError
from alphaloop.policies.lm import LMArch
from alphaloop.policies.nets import NetConfig
from alphaloop.stages.alphazero import AlphaZeroStageConfig
from alphaloop.stages.eval import EvalStageConfig
from alphaloop.stages.game_eval import GameEvalStageConfig
from alphaloop.stages.game_imitate import GameImitateStageConfig
from alphaloop.stages.imitate import ImitateStageConfig
from alphaloop.stages.rl import RLStageConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvSpec(Strict):
    name: str = Field("arithmetic", description="registered env name, entry point, or 'module:Class'")
    knobs: dict[str, Any] = Field(default_factory=dict, description="the env's own settings (`alphaloop envs`)")


class PolicySpec(Strict):
    kind: Literal["lm", "net"] = Field("lm", description="'lm': a causal language model; 'net': a game net")
    arch: LMArch = Field(default_factory=LMArch, description="size of a freshly built Llama-architecture model")
    pretrained: str | None = Field(None, description="HF model name or path to start from instead of `arch`")
    net: NetConfig | None = Field(None, description="kind = 'net': size of the board-game policy-value net")


class ScaleSpec(Strict):
    """Where self-play and RL rollouts run (`alphaloop.scale`, docs/scaling.md). Results depend on
    `workers` (how a round's games or a step's prompts are split and seeded) and the threads per
    worker, not on `backend`."""

    backend: Literal["local", "ray"] = Field("local", description="'local': in this process; 'ray': Ray actors")
    address: str | None = Field(None, description="existing Ray cluster address ('auto', 'ray://host:10001'); "
                                                  "None starts a local Ray")
    workers: int = Field(1, ge=1, description="chunks a self-play round (or an RL step's prompts) is split into; "
                                              "Ray actors to run them")
    worker_threads: int | None = Field(None, ge=1, description="torch threads per worker; default: threads // "
                                                                "workers (at least 1)")

    @model_validator(mode="after")
    def _address_needs_ray(self) -> ScaleSpec:
        if self.address is not None and self.backend != "ray":
            raise ValueError(f"address {self.address!r} is only used with backend = 'ray' (got {self.backend!r})")
        return self


StageConfig = Annotated[ImitateStageConfig | RLStageConfig | EvalStageConfig | AlphaZeroStageConfig
                        | GameImitateStageConfig | GameEvalStageConfig, Field(discriminator="kind")]


class Recipe(Strict):
    name: str = Field("run", description="run name; the default run directory is runs/<name>")
    seed: int = Field(0, description="seeds every RNG; same recipe + seed + threads => same summary.json")
    threads: int = Field(2, ge=1, description="torch intra-op threads")
    env: EnvSpec = Field(default_factory=EnvSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    scale: ScaleSpec = Field(default_factory=ScaleSpec)
    stages: list[StageConfig] = Field(min_length=1)

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
        # Only AlphaZero self-play and RL rollouts are spread over workers; a setting that would change
        # nothing is an error, like an unknown key, rather than a silent no-op.
        spread = self.scale.backend != "local" or self.scale.workers > 1
        if spread and not any(stage.kind in ("alphazero", "rl") for stage in self.stages):
            raise ValueError(f"scale: backend {self.scale.backend!r} with {self.scale.workers} worker(s) spreads "
                             "AlphaZero self-play and RL rollouts only, and this recipe has no 'alphazero' or 'rl' "
                             "stage (its stages run in this process); remove [scale] or add such a stage")
        return self


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


def _describe_error(source: str, err: dict[str, Any], stage_kinds: list[str]) -> str:
    loc = list(err["loc"])
    # Discriminated unions insert the tag ("imitate") into the location; drop it for readability.
    if len(loc) >= 3 and loc[0] == "stages" and loc[2] in stage_kinds:
        loc.pop(2)
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
        kinds = ["imitate", "eval", "rl", "dpo", "reward_model", "alphazero", "distill", "game_imitate",
                 "game_eval"]
        lines = [_describe_error(source, e, kinds) for e in exc.errors()]
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
