"""The measurement that makes reward hacking visible: on a fixed set of held-out prompts, the
policy's samples scored by the proxy (the learned reward the policy is optimised against) and by
the env's hidden gold, against the distance from the starting policy, d = sqrt(KL(pi || pi_ref))
(Gao, Schulman & Hilton 2022 plot gold and proxy against d).

    KL(pi || pi_ref) ~ mean over samples y ~ pi of  log pi(y | x) - log pi_ref(y | x)

with log pi the sampler's own log-probabilities and log pi_ref the reference policy's on the same
tokens (the k1 estimator: unbiased, sequence level). Also logged: response length, the share of
polite openers and of padding (what the labellers' biases reward) and the harm rate, so the
report shows what the policy is doing when gold and proxy part.

The gold is read here, by evaluation code, for measurement; nothing here feeds a learner.
"""

from __future__ import annotations

import numpy as np
import torch

from alphaloop.batch import episode_batch
from alphaloop.collect import policy_episodes
from alphaloop.evals.evaluate import eval_problem_seed
from alphaloop.evals.overoptimisation import Form, fit_gao
from alphaloop.stages.context import StageContext
from alphaloop.stages.loop import Evaluate

POLITE_OPENERS = ("sure", "of course", "happy to help")


def gold_eval(ctx: StageContext, policy, reference, proxy, env, prompts: int, samples: int,
              max_new_tokens: int) -> Evaluate:
    """`evaluate(step)` for the stage loop: gold, proxy, KL and behaviour of `policy`'s samples on
    `prompts` fixed test prompts x `samples` each (the same sampling noise at every eval)."""
    problems = env.problems("test", prompts, seed=eval_problem_seed(ctx.recipe.seed, "test"))

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        was_training = policy.model.training
        policy.model.eval()
        generator = torch.Generator().manual_seed(ctx.seed("gold-eval"))
        groups = policy_episodes(policy, env, problems, samples, temperature=1.0, max_new_tokens=max_new_tokens,
                                 generator=generator)
        policy.model.train(was_training)
        pairs = [(problem, episode) for problem, group in zip(problems, groups) for episode in group]
        episodes = [e for _, e in pairs]
        with torch.no_grad():
            batch = episode_batch(episodes, reference.pad_id)
            ref_logprobs = reference.completion_logprobs(batch)[0]
        ref = (ref_logprobs * batch.mask).sum(1).tolist()
        kl = sum(sum(e.logprobs) - r for e, r in zip(episodes, ref)) / len(episodes)
        texts = [e.completion.strip().lower() for e in episodes]
        n = len(episodes)
        metrics = {"gold": round(sum(env.gold(p, e.completion) for p, e in pairs) / n, 6),
                   "kl": round(kl, 6), "kl_sqrt": round(max(kl, 0.0) ** 0.5, 6),
                   "length": round(sum(len(t) for t in texts) / n, 3),
                   "polite_rate": round(sum(t.startswith(POLITE_OPENERS) for t in texts) / n, 6),
                   "padded_rate": round(sum(len(t) > len(p.answer) + 3 and p.answer in t
                                            for (p, _), t in zip(pairs, texts)) / n, 6),
                   "harm_rate": round(sum(env.harm(p, e.completion) for p, e in pairs) / n, 6)
                   if hasattr(env, "harm") else 0.0, "n": n}
        if proxy is not None:
            metrics["proxy"] = round(sum(proxy.score(episodes)) / n, 6)
        ctx.log(step, kind="eval", split="gold-prompts", decoder="sample", **metrics)
        record = {"stage": ctx.stage.name, "step": step, "policy": ctx.stage.name, "split": "gold-prompts",
                  "decoder": "sample", "metrics": metrics}
        note = f"gold {metrics['gold']:.3f}" + (f" proxy {metrics['proxy']:.2f}" if proxy is not None else "")
        return [record], note + f" sqrt(KL) {metrics['kl_sqrt']:.2f}"

    return evaluate_at


def gold_results(evals: list[dict], kept: int | None = None) -> tuple[dict, dict, list[dict]]:
    """(the headline gold numbers of the last gold measurement -- or of step `kept` --, {"gold_vs_kl":
    points}, Gao's RL form fitted to the gold curve); all empty without gold measurements. Stages'
    curves of one name share a plot in the report, so RLHF and DPO runs land on the same axes."""
    gold = [r for r in evals if r["split"] == "gold-prompts"]
    if not gold:
        return {}, {}, []
    last = next((r for r in gold if r["step"] == kept), gold[-1])["metrics"]
    final = {k: last[k] for k in ("gold", "proxy", "kl_sqrt") if k in last}
    peak = max(gold, key=lambda r: r["metrics"]["gold"])
    final |= {"gold_peak": peak["metrics"]["gold"], "gold_peak_step": peak["step"]}
    points = [{"policy": r["stage"], "kl_sqrt": r["metrics"]["kl_sqrt"], "gold": r["metrics"]["gold"],
               **({"proxy": r["metrics"]["proxy"]} if "proxy" in r["metrics"] else {})} for r in gold]
    fit, fitted = gao_fit(gold[0]["stage"], [p["kl_sqrt"] for p in points], [p["gold"] for p in points], "rl")
    return final, {"gold_vs_kl": points + fitted}, [fit] if fit else []


def gao_fit(label: str, d: list[float], gold: list[float], form: Form, d_name: str = "k1 KL"
            ) -> tuple[dict | None, list[dict]]:
    """Gao et al.'s form fitted to the gold gain gold - gold[0] against d = sqrt(KL) (gold[0] measured
    at d = 0, the start): (the fit's record, points of the fitted curve for the gold-vs-KL plot), or
    (None, []) with fewer than four points (two coefficients need a residual to be judged by) or
    none away from the start."""
    if len(d) < 4:
        return None, []
    try:
        fit = fit_gao(d, [g - gold[0] for g in gold], form)
    except ValueError:
        return None, []
    best = max(range(len(gold)), key=gold.__getitem__)
    record = {"curve": label, "form": form, "d": d_name, **fit.as_dict(),
              "gold_start": round(gold[0], 6), "gold_peak_measured": round(gold[best], 6),
              "d_peak_measured": round(d[best], 6)}
    grid = np.linspace(0, max(d), 25)
    points = [{"policy": f"{label}: Gao fit (R^2 {fit.r2:.2f})", "kl_sqrt": round(float(x), 6),
               "gold": round(gold[0] + float(y), 6)} for x, y in zip(grid, fit.predict(grid))]
    return record, points


def combine(*evaluations: Evaluate) -> Evaluate:
    """Several in-training evaluations as one: their records in order, their notes side by side."""

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        records, notes = [], []
        for evaluate in evaluations:
            found, note = evaluate(step)
            records += found
            notes.append(note)
        return records, "  ".join(notes)

    return evaluate_at
