"""Stage `eval`: policies x splits x decoders into the run's report card.

Policies are named `expert` (the env's own program), `latest` (the newest trained stage), a stage
name, or `pretrained`: the recipe's `[policy] pretrained` model, i.e. the policy the run started
from, so an `rl` run that starts from a saved imitation policy can report both side by side.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from alphaloop.errors import UserError
from alphaloop.evals.agents import agent_curves
from alphaloop.evals.evaluate import (
    CURVE_FAMILIES,
    curve_families,
    eval_problem_seed,
    evaluate_decoders,
    parse_decoder,
)
from alphaloop.specs import RunSpec, StageConfig
from alphaloop.stages.context import StageContext


class EvalStageConfig(StageConfig):
    kind: Literal["eval"]
    policies: list[str] = Field(
        default_factory=lambda: ["expert", "latest"],
        description="'expert', 'latest' (the newest trained stage), any earlier stage's name, or "
                    "'pretrained' (the recipe's [policy] pretrained model the run started from)",
    )
    splits: list[str] = Field(default_factory=lambda: ["test"], description="train | test | heldout")
    decoders: list[str] = Field(default_factory=lambda: ["greedy"],
                                description="greedy, sample, maj@K, pass@K, oracle@K (upper bound), "
                                            "best@K / best-value@K and retry@K (value head), judge@K (self-judge), "
                                            "rm@K (a reward_model stage's model)")
    reward_model: str | None = Field(None, description="rm@K: the reward_model stage to pick by (default: the "
                                     "latest)")
    problems: int = Field(500, ge=1, le=10**6, description="problems per split (a fixed, seeded set)")
    problems_seed: int | None = Field(
        None, description="seed of the fixed problem sets (default: the recipe's seed); set it to compare runs "
                          "of different seeds on the very same problems")
    temperature: float = Field(1.0, gt=0, description="temperature of the sampled decoders")
    batch_size: int = Field(256, ge=1, le=65536)
    curve: list[int] | None = Field(
        None, description="test-time compute curve: sample counts k (e.g. [1, 2, 4, 8]); each of maj, "
                          "best, judge, oracle in decoders is scored at every k from one pass of "
                          "max(curve) samples")

    @field_validator("decoders")
    @classmethod
    def _decoders(cls, value: list[str]) -> list[str]:
        for spec in value:
            parse_decoder(spec)
        return value

    @field_validator("curve")
    @classmethod
    def _curve(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value or any(k < 1 for k in value):
            raise ValueError(f"expected a non-empty list of sample counts >= 1 (e.g. [1, 2, 4, 8]), "
                             f"got {value}")
        return sorted(set(value))

    @model_validator(mode="after")
    def _curve_needs_family(self) -> EvalStageConfig:
        if self.curve and not curve_families(self.decoders):
            raise ValueError(f"curve: needs at least one of {', '.join(f + '@K' for f in CURVE_FAMILIES)} "
                             f"in decoders to sweep, got decoders={self.decoders}")
        return self

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        problems = []
        mine = next(i for i, s in enumerate(run.stages) if s is self)
        models = [s.name for s in run.stages[:mine] if s.kind == "reward_model"]
        uses_rm = any(parse_decoder(d)[0] == "rm" for d in self.decoders)
        if uses_rm and not models:
            problems.append("decoders: rm@K picks by a reward model and needs an earlier reward_model stage")
        if self.reward_model is not None and self.reward_model not in models:
            problems.append(f"reward_model: {self.reward_model!r} is not an earlier reward_model stage "
                            f"({', '.join(models) or 'none'})")
        for name in self.policies:
            if name == "pretrained" and not run.policy.pretrained:
                problems.append("policies: 'pretrained' is the recipe's [policy] pretrained model, and this recipe "
                                "sets none")
            elif name == "latest" and not trained:
                problems.append("policies: 'latest' is the newest trained stage's policy, and no earlier stage "
                                "trains one")
            elif name not in ("expert", "latest", "pretrained") and name not in trained:
                problems.append(f"policies: {name!r} is not a policy of this recipe: expected 'expert', 'latest', "
                                f"'pretrained' or an earlier training stage's name ({', '.join(trained) or 'none'})")
        return problems

    @field_validator("splits")
    @classmethod
    def _splits(cls, value: list[str]) -> list[str]:
        for split in value:
            if split not in ("train", "test", "heldout"):
                raise ValueError(f"unknown split {split!r}: expected train, test or heldout")
        return value


def load_named_policy(ctx: StageContext, name: str):
    """None for the expert, else the LM policy `name` refers to (a stage's, or the recipe's pretrained)."""
    from alphaloop.policies.lm import LMPolicy

    if name == "expert":
        return None
    if name == "pretrained" and name not in ctx.results:
        source = ctx.recipe.policy.pretrained
        if not source:
            raise UserError("eval: policy 'pretrained' needs [policy] pretrained = \"<dir or HF name>\" in the "
                            "recipe (the policy the run started from)")
        try:
            return LMPolicy.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise UserError(f"eval: policy 'pretrained': cannot load {source!r}: {exc}") from None
    return LMPolicy.load(ctx.policy_dir(name))


def run_eval(ctx: StageContext, cfg: EvalStageConfig) -> dict[str, Any]:
    records, points = [], []
    names = [ctx.latest_policy_name() if p == "latest" else p for p in cfg.policies]
    names = [n for n in dict.fromkeys(names) if n is not None]
    problems_seed = ctx.recipe.seed if cfg.problems_seed is None else cfg.problems_seed
    task = ctx.new_progress_task(total=len(names) * len(cfg.splits))
    reward_model = None
    if any(parse_decoder(d)[0] == "rm" for d in cfg.decoders):
        from alphaloop.scorers.reward_model import RewardEnsemble

        rm_name = cfg.reward_model or [n for n, r in ctx.results.items() if "reward_model_dir" in r][-1]
        reward_model = RewardEnsemble.load(ctx.run_dir / ctx.results[rm_name]["reward_model_dir"])
    for name in names:
        policy = load_named_policy(ctx, name)
        for split in cfg.splits:
            env = ctx.make_env(split)
            problems = env.problems(split, cfg.problems, seed=eval_problem_seed(problems_seed, split))
            found, curve = evaluate_decoders(name, policy, env, problems, cfg.decoders,
                                             seed=ctx.seed(name, split), temperature=cfg.temperature,
                                             batch_size=cfg.batch_size, curve=cfg.curve,
                                             skip_missing_value_head=True, reward_model=reward_model)
            records += [{"stage": cfg.name, "step": None, **record} for record in found]
            points += curve
            shown = next((r for r in found if "accuracy" in r["metrics"]), None)
            info = f"{name}/{split} {shown['decoder']} {shown['metrics']['accuracy']:.1%}" if shown else ""
            ctx.progress.update(task, advance=1, info=info)
    result: dict[str, Any] = {"evals": records}
    curves = agent_curves(records)
    if cfg.curve:
        curves["test_time_compute"] = points
    if curves:
        result["curves"] = curves
    return result
