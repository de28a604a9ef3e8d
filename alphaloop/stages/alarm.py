"""The over-optimisation alarm of an RLHF run: a signal a real team has, that fires while the proxy
still rises but the policy has started to exploit it.

A team optimising against a learned reward cannot see the gold, but it can afford a small set of
careful labels (`env.careful_label`: better / equally good / worse, no biases). At every eval, on
`prompts` fixed training prompts, it draws `pairs` pairs of responses of the current policy and one
label on each pair, and asks: **does the reward model still agree with the careful labellers about the policy's
own samples?** Policy-gradient RL pushes each prompt's samples apart in the order the proxy ranks
them, so the gold improves while that order agrees with the labels more often than not and falls
once it disagrees: the agreement falling marks the turn of the gold curve (Gao et al. 2022), while the proxy, by
construction, still climbs. The gold on held-out prompts turns before the agreement on training
prompts reaches 1/2 (agreeing on the few pairs that differ a lot in gold, right against wrong,
is outweighed by disagreeing on many that differ a little), so the default threshold, 0.7, was
set on three development seeds and checked on others (docs/rlhf.md). Pairs the labellers call equally
good carry no information and are skipped; the last `window` evals are pooled so a few dozen labels
decide. The alarm fires at the first eval where

    agreement(last `window` evals) < `agreement`    and    proxy > proxy at the start

A second label per prompt, one response against the starting policy's, gives the policy's **win
rate over its start**; with `early_stop` the stage ends at the alarm and keeps the policy of the
eval with the best win rate so far: the checkpoint from before the alarm. Both use the same seed
at every eval (common random numbers), so they move when the policy does, not with sampling noise.
"""

from __future__ import annotations

import random
from typing import Any

import torch

from alphaloop.collect import policy_episodes
from alphaloop.stages.context import StageContext
from alphaloop.stages.loop import Evaluate


class OveroptimisationAlarm:
    """The decision rule (module docstring) and the policy weights of the best eval so far."""

    def __init__(self, agreement: float = 0.7, window: int = 2, min_pairs: int = 8) -> None:
        self.agreement = agreement
        self.window = window
        self.min_pairs = min_pairs
        self.pairs: list[tuple[int, int]] = []      # per eval: (pairs the proxy ordered like the labels, pairs)
        self.start_proxy: float | None = None
        self.best: float | None = None
        self.best_step = 0
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.fired_at: int | None = None
        self.labels = 0

    def pooled_agreement(self) -> tuple[float | None, int]:
        """(share of the last `window` evals' labelled pairs the proxy orders like the labels, pairs)."""
        agree = sum(a for a, _ in self.pairs[-self.window:])
        total = sum(n for _, n in self.pairs[-self.window:])
        return (agree / total if total else None), total

    def observe(self, step: int, agree: int, pairs: int, win_rate: float, proxy: float, policy) -> bool:
        """Record an eval (`agree` of `pairs` labelled pairs ordered alike by the proxy); True when the
        alarm fires at this one."""
        self.pairs.append((agree, pairs))
        if self.fired_at is not None:
            return False
        if self.start_proxy is None:
            self.start_proxy = proxy
        if self.best is None or win_rate > self.best:
            self.best, self.best_step = win_rate, step
            self.best_weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
        pooled, total = self.pooled_agreement()
        if pooled is not None and total >= self.min_pairs and pooled < self.agreement and proxy > self.start_proxy:
            self.fired_at = step
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("pairs", "start_proxy", "best", "best_step", "best_weights",
                                               "fired_at", "labels")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def alarm_eval(ctx: StageContext, alarm: OveroptimisationAlarm, policy, reference, proxy, env, prompts: int,
               pairs: int, max_new_tokens: int) -> Evaluate:
    """`evaluate(step)` for the stage loop: on `prompts` fixed training prompts, the reward model's
    agreement with careful labels on `pairs` pairs of the policy's samples per prompt, the policy's
    win rate over its start, the proxy, and the alarm's verdict (pairs + 1 labels per prompt)."""
    rng = random.Random(ctx.seed("alarm-prompts"))
    problems = [env.sample_problem(rng, "train") for _ in range(prompts)]
    reference.model.eval()
    with torch.no_grad():
        before = [g[0].completion for g in policy_episodes(
            reference, env, problems, 1, max_new_tokens=max_new_tokens,
            generator=torch.Generator().manual_seed(ctx.seed("alarm-reference")))]

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        was_training = policy.model.training
        policy.model.eval()
        groups = policy_episodes(policy, env, problems, 2 * pairs, max_new_tokens=max_new_tokens,
                                 generator=torch.Generator().manual_seed(ctx.seed("alarm-sample")))
        policy.model.train(was_training)
        label_rng = random.Random(ctx.seed("alarm-label", step))
        flat = [e for g in groups for e in g]
        scores = proxy.score(flat)
        agree = labelled = 0
        wins = []
        for i, (problem, ref) in enumerate(zip(problems, before)):
            for j in range(2 * pairs * i, 2 * pairs * (i + 1), 2):
                verdict = env.careful_label(problem, flat[j].completion, flat[j + 1].completion, label_rng)
                if verdict != 0.5 and scores[j] != scores[j + 1]:
                    labelled += 1
                    agree += (scores[j] > scores[j + 1]) == (verdict == 1.0)
            wins.append(env.careful_label(problem, flat[2 * pairs * i].completion, ref, label_rng))
        alarm.labels += (pairs + 1) * len(problems)
        win_rate = sum(wins) / len(wins)
        proxy_mean = sum(scores) / len(scores)
        fired = alarm.observe(step, agree, labelled, win_rate, proxy_mean, policy)
        pooled, pooled_pairs = alarm.pooled_agreement()
        metrics = {"agreement": round(agree / labelled, 6) if labelled else None, "agreed": agree,
                   "labelled": labelled,
                   "agreement_pooled": None if pooled is None else round(pooled, 6), "pairs": pooled_pairs,
                   "win_rate": round(win_rate, 6), "proxy": round(proxy_mean, 6), "labels": alarm.labels,
                   "fired": float(fired)}
        ctx.log(step, kind="eval", split="alarm", decoder="careful-labels", **metrics)
        record = {"stage": ctx.stage.name, "step": step, "policy": ctx.stage.name, "split": "alarm",
                  "decoder": "careful-labels", "metrics": metrics}
        shown = "-" if pooled is None else f"{pooled:.2f}"
        return [record], f"agreement {shown} win {win_rate:.2f}" + ("  ALARM" if fired else "")

    return evaluate_at
