"""Stage `best_of_n`: best-of-n against reward models as a decoder, and its over-optimisation curve.

Best-of-n is the simplest way to optimise against a reward model: sample n responses, keep the one
the model scores highest. It moves the policy by a known amount, KL = log n - (n - 1) / n, so it is
the cleanest probe of how a proxy and the gold part as optimisation pressure grows (Gao, Schulman &
Hilton 2022, section 3.2). One sampling pass of `samples` (M) responses on each of `prompts` fixed
test prompts serves every n <= M and every reward model: for each n it reports the expected gold
and proxy of the best-of-n pick (unbiased estimator, `evals/overoptimisation.py`), the closed-form
KL and the plug-in KL of the samples (lower when the policy repeats itself), and, as a ceiling, the
gold of best-of-n picked by the gold itself. Gao's form R(d) = d (alpha - beta d) is fitted to each
reward model's gold gain, so a sweep of reward models (size, number of comparisons) shows how the
gold peak moves.

The gold is read here to measure, as in every eval; nothing here trains.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator

from alphaloop.collect import policy_episodes
from alphaloop.errors import UserError
from alphaloop.evals.evaluate import eval_problem_seed
from alphaloop.evals.overoptimisation import bon_expected, bon_kl_analytic, bon_kl_plugin
from alphaloop.scorers.reward_model import Aggregate, RewardEnsemble
from alphaloop.specs import RunSpec, StageConfig
from alphaloop.stages.context import StageContext
from alphaloop.stages.gold_eval import gao_fit


def _powers_of_two(limit: int) -> list[int]:
    return [2 ** i for i in range(int(math.log2(limit)) + 1)]


class BestOfNStageConfig(StageConfig):
    kind: Literal["best_of_n"]
    policy: str | None = Field(None, description="the trained stage whose policy samples (default: the latest)")
    reward_models: list[str] | None = Field(None, description="reward_model stages to pick by, one curve each "
                                            "(default: every earlier one)")
    aggregate: Aggregate | None = Field(None, description="override the ensembles' aggregation")
    prompts: int = Field(48, ge=1, le=10**5, description="fixed test prompts (the RL stage's gold prompts)")
    samples: int = Field(256, ge=1, le=65536, description="responses sampled per prompt (M); best-of-n for n <= M")
    ns: list[int] | None = Field(None, description="the n to report (default: 1, 2, 4, ... up to samples)")
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int | None = Field(None, ge=1, le=65536)

    @field_validator("ns")
    @classmethod
    def _ns(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(n < 1 for n in value)):
            raise ValueError(f"expected a non-empty list of n >= 1, got {value}")
        return None if value is None else sorted(set(value))

    @model_validator(mode="after")
    def _ns_within_samples(self) -> BestOfNStageConfig:
        if self.ns is not None and max(self.ns) > self.samples:
            raise ValueError(f"ns: n = {max(self.ns)} needs at least that many samples per prompt; samples = "
                             f"{self.samples}")
        return self

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        mine = next(i for i, s in enumerate(run.stages) if s is self)
        earlier = [s.name for s in run.stages[:mine] if s.kind == "reward_model"]
        if not earlier:
            return ["kind: best_of_n picks by a reward model and needs an earlier reward_model stage"]
        unknown = [n for n in self.reward_models or [] if n not in earlier]
        if unknown:
            return [f"reward_models: {', '.join(map(repr, unknown))} not an earlier reward_model stage "
                    f"({', '.join(earlier)})"]
        if self.policy is not None and self.policy not in trained:
            return [f"policy: {self.policy!r} is not an earlier stage that trains a policy "
                    f"({', '.join(trained) or 'none'})"]
        if self.policy is None and not trained and not run.policy.pretrained:
            return ["policy: no earlier stage trains a policy to sample from (add an imitate stage first)"]
        return []


def bon_curve(scores: list[list[float]], golds: list[list[float]], ns: list[int]) -> list[dict[str, float]]:
    """Per n, averaged over prompts: gold and proxy of the best-of-n pick, both KLs, and the gold
    ceiling (best-of-n picked by the gold)."""
    rows = []
    for n in ns:
        gold = np.mean([bon_expected(s, g, n) for s, g in zip(scores, golds)])
        proxy = np.mean([bon_expected(s, s, n) for s in scores])
        ceiling = np.mean([bon_expected(g, g, n) for g in golds])
        plugin = np.mean([bon_kl_plugin(s, n) for s in scores])
        analytic = bon_kl_analytic(n)
        rows.append({"n": n, "gold": float(gold), "proxy": float(proxy), "gold_ceiling": float(ceiling),
                     "kl": analytic, "kl_sqrt": math.sqrt(analytic), "kl_plugin": float(plugin),
                     "kl_plugin_sqrt": math.sqrt(max(float(plugin), 0.0))})
    return [{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


def fit_rows(label: str, rows: list[dict[str, float]]) -> tuple[list[dict], list[dict]]:
    """Gao's best-of-n form fitted to the gold gain against the closed-form d and the plug-in d:
    (fit records, points of the closed-form fit for the gold-vs-KL plot)."""
    fits, points = [], []
    if rows[0]["n"] != 1 or len(rows) < 3:
        return fits, points
    gold = [r["gold"] for r in rows]
    for d_key, which in (("kl_sqrt", "closed-form KL"), ("kl_plugin_sqrt", "plug-in KL")):
        fit, fitted = gao_fit(label, [r[d_key] for r in rows], gold, "bon", which)
        if fit is not None:
            fits.append(fit | {"n_peak_measured": max(rows, key=lambda r: r["gold"])["n"]})
            points += fitted if d_key == "kl_sqrt" else []
    return fits, points


def run_best_of_n(ctx: StageContext, cfg: BestOfNStageConfig) -> dict[str, Any]:
    from alphaloop.policies.lm import LMPolicy

    env = ctx.make_env("test")
    if not hasattr(env, "gold"):
        raise UserError(f"best_of_n: env {ctx.recipe.env.name!r} has no hidden gold judge to measure against")
    name = cfg.policy or ctx.latest_policy_name()
    policy = LMPolicy.load(ctx.policy_dir(name)) if name else ctx.initial_policy()
    problems = env.problems("test", cfg.prompts, seed=eval_problem_seed(ctx.recipe.seed, "test"))
    generator = torch.Generator().manual_seed(ctx.seed("sample"))
    policy.model.eval()
    groups = policy_episodes(policy, env, problems, cfg.samples, temperature=cfg.temperature,
                             max_new_tokens=cfg.max_new_tokens or env.max_completion_chars + 1, generator=generator)
    golds = [[env.gold(p, e.completion) for e in group] for p, group in zip(problems, groups)]
    ns = cfg.ns or _powers_of_two(cfg.samples)
    earlier = [n for n, r in ctx.results.items() if "reward_model_dir" in r]
    chosen = cfg.reward_models or earlier
    task = ctx.new_progress_task(total=len(chosen))
    records, curve, gold_vs_kl, fits = [], [], [], []
    final: dict[str, Any] = {"distinct_per_prompt": round(float(np.mean([len({e.completion for e in g})
                                                                        for g in groups])), 3)}
    for rm_name in chosen:
        proxy = RewardEnsemble.load(ctx.run_dir / ctx.results[rm_name]["reward_model_dir"], cfg.aggregate)
        scores = [proxy.score(group) for group in groups]
        rows = bon_curve(scores, golds, ns)
        label = f"best-of-n ({rm_name})"
        for row in rows:
            ctx.log(row["n"], kind="eval", split="gold-prompts", decoder=f"best-of-{row['n']}:{rm_name}",
                    **{k: v for k, v in row.items() if k != "n"})
            records.append({"stage": ctx.stage.name, "step": row["n"], "policy": name or "initial",
                            "split": "gold-prompts", "decoder": f"best-of-{row['n']}:{rm_name}",
                            "metrics": {k: v for k, v in row.items() if k != "n"}})
        curve += [{"policy": rm_name, **row} for row in rows]
        gold_vs_kl += [{"policy": label, "kl_sqrt": r["kl_sqrt"], "gold": r["gold"], "proxy": r["proxy"]}
                       for r in rows]
        found, fitted = fit_rows(label, rows)
        fits += found
        gold_vs_kl += fitted
        best = max(rows, key=lambda r: r["gold"])
        final[rm_name] = {"gold_n1": rows[0]["gold"], "gold_peak": best["gold"], "n_peak": best["n"],
                          f"gold_n{rows[-1]['n']}": rows[-1]["gold"], f"proxy_n{rows[-1]['n']}": rows[-1]["proxy"]}
        if found:
            final[rm_name] |= {"fit_alpha": found[0]["alpha"], "fit_beta": found[0]["beta"],
                               "fit_r2": found[0]["r2"], "fit_d_peak": found[0]["d_peak"]}
        ctx.progress.update(task, advance=1, info=f"{rm_name}: gold {rows[0]['gold']:.3f} (n=1) -> peak "
                            f"{best['gold']:.3f} (n={best['n']}) -> {rows[-1]['gold']:.3f} (n={rows[-1]['n']})")
    return {"final": final, "evals": records, "fits": fits,
            "curves": {"best_of_n": curve, "gold_vs_kl": gold_vs_kl}}
