"""Stage `reward_model`: learn r(x, y) from pairwise preferences (Bradley-Terry), one model or an
ensemble of k (Coste et al. 2023), starting from the latest trained policy (InstructGPT's recipe).

Pairs come from a file or from the env's labellers (`stages/preference_data.py`).

Every `eval_every` steps, on held-out pairs (test-split prompts): the pairwise accuracy against
the labellers, and -- a measurement only, never a training signal -- against the env's hidden gold
where it has one, plus the reward the model gives for each response kind of the env (ideal,
polite, padded, ...) minus the ideal's: the biases it has learned, which a policy will later exploit.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from pydantic import Field

from alphaloop.learners.optim import adamw
from alphaloop.learners.reward_model import bradley_terry_loss
from alphaloop.learners.schedules import descend, warmup_cosine
from alphaloop.policies.arch import LMArch
from alphaloop.scorers.reward_model import Aggregate, RewardEnsemble, RewardModel
from alphaloop.stages.context import StageContext
from alphaloop.stages.loop import StageLoop
from alphaloop.stages.preference_data import PreferenceDataFields, stage_pairs

KIND_NAMES = ("ideal", "polite", "padded", "polite+padded", "wrong", "polite+wrong", "refusal-flip")


class RewardModelStageConfig(PreferenceDataFields):
    kind: Literal["reward_model"]
    ensemble: int = Field(1, ge=1, le=16, description="reward models trained (seeds and data orders differ)")
    aggregate: Aggregate = Field("mean", description="how an ensemble's rewards combine (Coste et al. 2023)")
    lam: float = Field(1.0, ge=0, description="mean_minus_std: the weight of the members' disagreement")
    lr: float = Field(1e-3, gt=0)
    warmup_steps: int = Field(20, ge=0)
    margin: float = Field(0.0, ge=0, description="Bradley-Terry margin m: -log sigmoid(r_c - r_r - m)")
    arch: LMArch | None = Field(None, description="a freshly initialised backbone of this size instead of the latest "
                                "policy (reward-model size sweeps); the pairs still come from the latest policy")
    eval_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(100, ge=1)


def evaluate_rm(ctx: StageContext, ensemble: RewardEnsemble, test: list, env, step: int) -> tuple[list[dict], str]:
    """Held-out pairwise accuracy (labellers; gold where the env has one) and the learned biases."""
    pairs = [pair for _, pair in test]
    chosen = ensemble.score_texts([p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = ensemble.score_texts([p.prompt for p in pairs], [p.rejected for p in pairs])
    metrics: dict[str, Any] = {"accuracy": round(sum(c > r for c, r in zip(chosen, rejected)) / len(pairs), 6),
                               "gap": round(sum(c - r for c, r in zip(chosen, rejected)) / len(pairs), 6),
                               "n": len(pairs)}
    if hasattr(env, "gold"):
        right = total = 0
        for (problem, pair), c, r in zip(test, chosen, rejected):
            gc, gr = env.gold(problem, pair.chosen), env.gold(problem, pair.rejected)
            if gc != gr:
                total += 1
                right += (c > r) == (gc > gr)
        metrics["gold_accuracy"] = round(right / max(total, 1), 6)
    if hasattr(env, "variants"):
        problems = [problem for problem, _ in test]
        rng = random.Random(0)
        kinds = [env.variants(problem, rng) for problem in problems]
        for k, name in enumerate(KIND_NAMES[1:], start=1):
            ideal = ensemble.score_texts([p.prompt for p in problems], [v[0] for v in kinds])
            other = ensemble.score_texts([p.prompt for p in problems], [v[k] for v in kinds])
            metrics[f"bonus_{name}"] = round(sum(o - i for o, i in zip(other, ideal)) / len(problems), 6)
    ctx.log(step, kind="eval", split="test-pairs", decoder="rm", **metrics)
    record = {"stage": ctx.stage.name, "step": step, "policy": ctx.stage.name, "split": "test-pairs",
              "decoder": "rm", "metrics": metrics}
    return [record], f"held-out pair accuracy {metrics['accuracy']:.1%}"


def run_reward_model(ctx: StageContext, cfg: RewardModelStageConfig) -> dict[str, Any]:
    loop = StageLoop(ctx, cfg.steps, cfg.eval_every, cfg.checkpoint_every)
    resumed = loop.resume()
    base = ctx.initial_policy()   # the policy the pairs' responses come from, and every member's backbone
    train, test = stage_pairs(ctx, cfg, base)
    if resumed:
        ensemble = RewardEnsemble.load(resumed, cfg.aggregate, cfg.lam)
    else:
        backbone = base
        if cfg.arch is not None:
            from alphaloop.policies.lm import LMPolicy

            backbone = LMPolicy.build(cfg.arch, alphabet=ctx.make_env("train", seed=0).alphabet,
                                      seed=ctx.seed("backbone"))
        ensemble = RewardEnsemble([RewardModel.from_policy(backbone, ctx.seed("head", i))
                                   for i in range(cfg.ensemble)], cfg.aggregate, cfg.lam)
    optimizers = [adamw(list(m.parameters()), cfg.lr, cfg.weight_decay) for m in ensemble.members]
    if loop.state:
        for optimizer, state in zip(optimizers, loop.state["optimizers"]):
            optimizer.load_state_dict(state)
    test_env = ctx.make_env("test")
    evaluate = lambda step: evaluate_rm(ctx, ensemble, test, test_env, step)  # noqa: E731
    loop.eval_at_start(evaluate)

    for member in ensemble.members:
        member.train()
    for step in loop.steps():
        began = time.time()
        lr = cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        totals: dict[str, float] = {}
        for i, (member, optimizer) in enumerate(zip(ensemble.members, optimizers)):
            # Each member sees its own order of the pairs: ensembles need members that differ.
            batch = random.Random(ctx.seed("batch", i, step)).sample(train, min(cfg.batch_size, len(train)))
            prompts = [p.prompt for p in batch] * 2
            rewards = member.rewards(prompts, [p.chosen for p in batch] + [p.rejected for p in batch])
            loss, stats = bradley_terry_loss(rewards[:len(batch)], rewards[len(batch):], cfg.margin)
            descend(optimizer, list(member.parameters()), loss, lr, cfg.grad_clip)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value / len(ensemble.members)
        ctx.log(step + 1, **{k: round(v, 6) for k, v in totals.items()}, lr=lr,
                pairs_per_s=round(cfg.batch_size * len(ensemble.members) / max(time.time() - began, 1e-9), 1))
        loop.end_step(step + 1, ensemble, f"loss {totals['loss']:.3f}", evaluate,
                      lambda: {"optimizers": [o.state_dict() for o in optimizers]})
    for member in ensemble.members:
        member.train(False)
    final = {k: v for k, v in loop.evals[-1]["metrics"].items() if k != "n"} if loop.evals else {}
    result = loop.finish(ensemble, final)
    result["reward_model_dir"] = result.pop("policy_dir")
    return result
