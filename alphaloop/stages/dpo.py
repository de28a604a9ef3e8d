"""Stage `dpo`: direct preference optimisation (Rafailov et al. 2023), or IPO (Azar et al. 2023), on the
same preference pairs a reward model would learn from (`stages/preference_data.py`), with the
policy the stage starts from as the frozen reference.

Every `eval_every` steps: greedy test accuracy, the implicit-reward accuracy and margin on
held-out pairs, and -- where the env has a hidden gold -- gold and sqrt(KL(pi || pi_ref)) on fixed
test prompts (`stages/gold_eval.py`), on the same axes as an RLHF run's.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import torch
from pydantic import Field

from alphaloop.batch import pack_completions
from alphaloop.learners.dpo import Loss, dpo_loss
from alphaloop.learners.optim import adamw
from alphaloop.learners.schedules import descend, warmup_cosine
from alphaloop.stages.context import StageContext
from alphaloop.stages.gold_eval import combine, gold_eval, gold_results
from alphaloop.stages.lm_eval import greedy_test_eval
from alphaloop.stages.loop import StageLoop
from alphaloop.stages.preference_data import PreferenceDataFields, stage_pairs


class DPOStageConfig(PreferenceDataFields):
    kind: Literal["dpo"]
    loss: Loss = Field("sigmoid", description="'sigmoid' = DPO, 'ipo' = IPO's squared loss")
    beta: float = Field(0.1, gt=0, description="DPO's beta (IPO's tau): the strength of the pull to the reference")
    lr: float = Field(1e-4, gt=0)
    warmup_steps: int = Field(10, ge=0)
    eval_every: int = Field(50, ge=1)
    eval_problems: int = Field(200, ge=1, le=10**6)
    gold_prompts: int = Field(48, ge=0, le=10**5, description="fixed test prompts for gold and sqrt(KL) (0 = off)")
    gold_samples: int = Field(4, ge=1, le=1024)
    checkpoint_every: int = Field(50, ge=1)


def sequence_logprobs(policy, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """log pi(y | x) of each whole response (its EOS included), [N]."""
    batch = pack_completions([policy.prompt_ids(p) for p in prompts],
                             [policy.encode(r) + [policy.eos_id] for r in responses], policy.pad_id)
    logprobs = policy.completion_logprobs(batch)[0]
    return (logprobs * batch.mask).sum(1)


@torch.no_grad()
def pair_logprobs(policy, pairs, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """(log pi(chosen), log pi(rejected)) of every pair, without gradient."""
    chosen, rejected = [], []
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        both = sequence_logprobs(policy, [p.prompt for p in part] * 2, [p.chosen for p in part]
                                 + [p.rejected for p in part])
        chosen.append(both[:len(part)])
        rejected.append(both[len(part):])
    return torch.cat(chosen), torch.cat(rejected)


def held_out_pairs_eval(ctx: StageContext, policy, test: list, ref: tuple, beta: float):
    """The implicit reward beta * log(pi / pi_ref) on held-out pairs: accuracy and margin."""
    pairs = [pair for _, pair in test]

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        was_training = policy.model.training
        policy.model.eval()
        chosen, rejected = pair_logprobs(policy, pairs)
        policy.model.train(was_training)
        h = (chosen - ref[0]) - (rejected - ref[1])
        metrics = {"accuracy": round(float((h > 0).float().mean()), 6), "gap": round(float(beta * h.mean()), 6),
                   "n": len(pairs)}
        ctx.log(step, kind="eval", split="test-pairs", decoder="implicit-reward", **metrics)
        return ([{"stage": ctx.stage.name, "step": step, "policy": ctx.stage.name, "split": "test-pairs",
                  "decoder": "implicit-reward", "metrics": metrics}],
                f"held-out pair accuracy {metrics['accuracy']:.1%}")

    return evaluate_at


def run_dpo(ctx: StageContext, cfg: DPOStageConfig) -> dict[str, Any]:
    from alphaloop.policies.lm import LMPolicy

    loop = StageLoop(ctx, cfg.steps, cfg.eval_every, cfg.checkpoint_every)
    resumed = loop.resume()
    reference = ctx.initial_policy()          # the policy the stage starts from, frozen
    reference.requires_grad_(False)
    reference.model.eval()
    policy = LMPolicy.load(resumed) if resumed else ctx.initial_policy()
    train, test = stage_pairs(ctx, cfg, reference)
    ref_train = pair_logprobs(reference, train)   # the reference's log-probs: computed once
    ref_test = pair_logprobs(reference, [pair for _, pair in test])
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = adamw(params, cfg.lr, cfg.weight_decay, betas=(0.9, 0.99))
    if loop.state:
        optimizer.load_state_dict(loop.state["optimizer"])
    test_env = ctx.make_env("test")
    evaluate = combine(greedy_test_eval(ctx, policy, cfg.eval_problems),
                       held_out_pairs_eval(ctx, policy, test, ref_test, cfg.beta))
    if cfg.gold_prompts and hasattr(test_env, "gold"):
        evaluate = combine(evaluate, gold_eval(ctx, policy, reference, None, test_env, cfg.gold_prompts,
                                               cfg.gold_samples, test_env.max_completion_chars + 1))
    loop.eval_at_start(evaluate)

    policy.model.train()
    for step in loop.steps():
        began = time.time()
        rows = random.Random(ctx.seed("batch", step)).sample(range(len(train)), min(cfg.batch_size, len(train)))
        batch = [train[i] for i in rows]
        both = sequence_logprobs(policy, [p.prompt for p in batch] * 2, [p.chosen for p in batch]
                                 + [p.rejected for p in batch])
        index = torch.tensor(rows)
        loss, stats = dpo_loss(both[:len(batch)], both[len(batch):], ref_train[0][index], ref_train[1][index],
                               cfg.beta, cfg.loss)
        lr = cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        stats["grad_norm"] = descend(optimizer, params, loss, lr, cfg.grad_clip)
        ctx.log(step + 1, **{k: round(v, 6) for k, v in stats.items()}, lr=lr,
                pairs_per_s=round(len(batch) / max(time.time() - began, 1e-9), 1))
        loop.end_step(step + 1, policy, f"loss {stats['loss']:.3f}", evaluate,
                      lambda: {"optimizer": optimizer.state_dict()})

    pairs_eval = [r for r in loop.evals if r["split"] == "test-pairs"]
    greedy = [r for r in loop.evals if r["split"] == "test" and r["decoder"] == "greedy"]
    final = {"test_greedy_accuracy": greedy[-1]["metrics"]["accuracy"]} if greedy else {}
    if pairs_eval:
        final["pair_accuracy"] = pairs_eval[-1]["metrics"]["accuracy"]
    gold, curves, fits = gold_results(loop.evals)
    result = loop.finish(policy, final | gold)
    return result | ({"curves": curves} if curves else {}) | ({"fits": fits} if fits else {})
