"""The over-optimisation alarm of an RLHF run: a signal a real team has, that fires while the proxy
still rises but the policy has started to exploit it.

A team optimising against a learned reward cannot see the gold, but it can afford a small set of
careful labels: at every eval, `prompts` training prompts, one response of the current policy
against one of the starting policy (sampled once), judged by careful labellers (better / equally
good / worse; `env.careful_label`). Their mean is the policy's **win rate over its start**. While
the policy learns what the labellers meant, it rises; once the policy trades real quality for what
only the reward model pays for, it falls -- while the proxy keeps climbing. The alarm fires at the
first eval where

    win_rate < max(win_rate so far) - drop     and     proxy > proxy at that best eval

(Gao et al. 2022 show gold against KL turning down while the proxy keeps rising; this watches the
same turn through a few hundred labels instead of the gold). The policy's samples use the same
seed at every eval (common random numbers), so the win rate moves when the policy does, not with
sampling noise. With `early_stop` the stage ends there and keeps the policy of the best eval: the
checkpoint from before the alarm.
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

    def __init__(self, drop: float) -> None:
        self.drop = drop
        self.best: float | None = None
        self.best_step = 0
        self.best_proxy = float("-inf")
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.fired_at: int | None = None
        self.labels = 0

    def observe(self, step: int, win_rate: float, proxy: float, policy) -> bool:
        """Record an eval; True when the alarm fires at this one."""
        if self.fired_at is not None:
            return False
        if self.best is None or win_rate > self.best:
            self.best, self.best_step, self.best_proxy = win_rate, step, proxy
            self.best_weights = {k: v.detach().clone() for k, v in policy.state_dict().items()}
            return False
        if win_rate < self.best - self.drop and proxy > self.best_proxy:
            self.fired_at = step
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_step": self.best_step, "best_proxy": self.best_proxy,
                "best_weights": self.best_weights, "fired_at": self.fired_at, "labels": self.labels}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def alarm_eval(ctx: StageContext, alarm: OveroptimisationAlarm, policy, reference, proxy, env, prompts: int,
               max_new_tokens: int) -> Evaluate:
    """`evaluate(step)` for the stage loop: the careful labels' win rate of `policy` over `reference` on
    `prompts` fixed training prompts, the proxy on the same samples, and the alarm's verdict."""
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
        episodes = [g[0] for g in policy_episodes(policy, env, problems, 1, max_new_tokens=max_new_tokens,
                                                  generator=torch.Generator().manual_seed(ctx.seed("alarm-sample")))]
        policy.model.train(was_training)
        label_rng = random.Random(ctx.seed("alarm-label", step))
        verdicts = [env.careful_label(p, e.completion, ref, label_rng) for p, e, ref in zip(problems, episodes, before)]
        alarm.labels += len(verdicts)
        win_rate = sum(verdicts) / len(verdicts)
        proxy_mean = sum(proxy.score(episodes)) / len(episodes)
        fired = alarm.observe(step, win_rate, proxy_mean, policy)
        metrics = {"win_rate": round(win_rate, 6), "proxy": round(proxy_mean, 6),
                   "best_win_rate": round(alarm.best, 6), "labels": alarm.labels, "fired": float(fired)}
        ctx.log(step, kind="eval", split="alarm", decoder="careful-labels", **metrics)
        record = {"stage": ctx.stage.name, "step": step, "policy": ctx.stage.name, "split": "alarm",
                  "decoder": "careful-labels", "metrics": metrics}
        return [record], f"win rate {win_rate:.2f}" + ("  ALARM" if fired else "")

    return evaluate_at
