"""Stage `eval`: policies x splits x decoders into the run's report card."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alphaloop.evals.evaluate import parse_decoder


class EvalStageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["eval"]
    name: str | None = None
    policies: list[str] = Field(
        default_factory=lambda: ["expert", "latest"],
        description="'expert', 'latest' (the newest trained stage) or any earlier stage's name",
    )
    splits: list[str] = Field(default_factory=lambda: ["test"], description="train | test | heldout")
    decoders: list[str] = Field(default_factory=lambda: ["greedy"], description="greedy, sample, maj@K, pass@K")
    problems: int = Field(500, ge=1, description="problems per split (a fixed, seeded set)")
    temperature: float = Field(1.0, gt=0, description="temperature of the sampled decoders")
    batch_size: int = Field(256, ge=1)

    @field_validator("decoders")
    @classmethod
    def _decoders(cls, value: list[str]) -> list[str]:
        for spec in value:
            parse_decoder(spec)
        return value

    @field_validator("splits")
    @classmethod
    def _splits(cls, value: list[str]) -> list[str]:
        for split in value:
            if split not in ("train", "test", "heldout"):
                raise ValueError(f"unknown split {split!r}: expected train, test or heldout")
        return value


def eval_problem_seed(recipe_seed: int, split: str) -> int:
    """Eval sets depend on the recipe seed and split only, so every stage and `alphaloop eval`
    see the same problems."""
    from alphaloop.runner import derive_seed

    return derive_seed(recipe_seed, "eval-problems", split) % (2**31)


def run_eval(ctx, cfg: EvalStageConfig) -> dict[str, Any]:
    from alphaloop.evals.evaluate import evaluate
    from alphaloop.policies.lm import LMPolicy

    records = []
    names = [ctx.latest_policy_name() if p == "latest" else p for p in cfg.policies]
    names = [n for n in dict.fromkeys(names) if n is not None]
    task = ctx.new_progress_task(total=len(names) * len(cfg.splits))
    for name in names:
        policy = None if name == "expert" else LMPolicy.load(ctx.policy_dir(name))
        for split in cfg.splits:
            env = ctx.make_env(split)
            problems = env.problems(split, cfg.problems, seed=eval_problem_seed(ctx.recipe.seed, split))
            for record in evaluate(name, policy, env, problems, cfg.decoders, seed=ctx.seed(name, split),
                                   temperature=cfg.temperature, batch_size=cfg.batch_size):
                records.append({"stage": cfg.name, "step": None, **record})
            best = records[-len(cfg.decoders)]["metrics"]["accuracy"]
            ctx.progress.update(task, advance=1, info=f"{name}/{split} {cfg.decoders[0]} {best:.1%}")
    return {"evals": records}
