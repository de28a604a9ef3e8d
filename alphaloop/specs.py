"""What a recipe says about the run, apart from each stage's own settings: the env, the policy,
where work runs, and the base every stage's config extends.

`alphaloop.recipe.Recipe` is a `RunSpec` whose `stages` are validated against the stage table
(`alphaloop.stages.STAGES`); stages see the run through this module's types only, so they never
import the recipe module that is built from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alphaloop.policies.arch import LMArch
from alphaloop.policies.nets import NetConfig


class Strict(BaseModel):
    """Every recipe table forbids unknown keys: a typo is an error, never a silently ignored key."""

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

    @property
    def spreads(self) -> bool:
        """Whether work leaves this process or is split at all (False for the default, one local worker)."""
        return self.backend != "local" or self.workers > 1


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(value: str | None, what: str) -> str | None:
    """Run and stage names become directory names: letters, digits, '.', '_', '-', at most 100."""
    if value is not None and not NAME.match(value):
        raise ValueError(f"{what} {value!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit (it names a directory)")
    return value


class StageConfig(Strict):
    """The base of every stage's settings: `kind` picks the stage (a Literal in each subclass),
    `name` names it in the run (default: its kind, made unique by the recipe)."""

    kind: str
    name: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return check_name(value, "stage name")

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        """Problems this stage has with the rest of the recipe, found before anything runs: each a
        message starting with the field it is about. `trained` names the earlier stages that leave
        a policy. A stage kind overrides this to check its cross-references."""
        return []


class RunSpec(Strict):
    """The run as its stages see it (`StageContext.recipe`)."""

    name: str = Field("run", description="run name; the default run directory is runs/<name>")
    seed: int = Field(0, ge=0, lt=2**63, description="seeds every RNG; same recipe + seed + threads => same "
                                                     "summary.json")
    threads: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field(
        "auto", description="torch intra-op threads; 'auto' = the cores other processes leave free when the run "
                            "starts (resolved once, written to the run's recipe.toml and summary.json)")
    env: EnvSpec = Field(default_factory=EnvSpec)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    scale: ScaleSpec = Field(default_factory=ScaleSpec)
    stages: list[StageConfig] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "name")
