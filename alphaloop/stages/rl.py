"""Stage `rl`: reinforcement learning with verifiable rewards (RLVR), or against a learned reward
model (RLHF, `reward = "reward_model"`).

One step (Shao et al. 2024's GRPO loop, with the DAPO and Dr. GRPO knobs of Yu et al. 2025 and
Liu et al. 2025, PPO with a critic, and VinePPO's Monte Carlo values for multi-turn episodes):

    prompts  --sampler-->  G completions each  --verifier-->  rewards
             --advantages (reinforce | rloo | grpo | dr_grpo | GAE for ppo, per token or per turn |
                           Monte Carlo values per turn for vineppo, from extra roll-outs)-->
             --clipped surrogate (+ beta * k3 KL to the frozen reference)-->  AdamW step

With `reward = "reward_model"` the verifier's reward is replaced by an earlier `reward_model`
stage's model (or ensemble), and -- where the env has a hidden gold judge -- every eval also
measures gold, proxy and sqrt(KL(pi || pi_ref)) on fixed held-out prompts (`stages/gold_eval.py`):
the reward-hacking curve of Gao et al. 2022, in the run itself.

The batch of a step depends only on (recipe seed, stage, step), and the sampler's generator is
seeded the same way, so a resumed run samples exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import random
import time
from functools import partial
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from alphaloop.collect import policy_episodes
from alphaloop.collect.agent_values import state_values
from alphaloop.collect.text_workers import RolloutFactory, load_policy_weights, rollout, rollout_jobs
from alphaloop.episode import Episode
from alphaloop.errors import UserError
from alphaloop.evals.agents import agent_metrics
from alphaloop.learners.advantages import zero_variance_groups
from alphaloop.learners.optim import adamw
from alphaloop.learners.rl_update import PolicyGradientSettings, rollout_batch, update
from alphaloop.learners.schedules import Schedule, multiplier
from alphaloop.learners.turn_credit import vine_advantages
from alphaloop.scale import make_workers, worker_threads
from alphaloop.scorers.reward_model import Aggregate, RewardEnsemble
from alphaloop.specs import RunSpec, StageConfig
from alphaloop.stages.alarm import OveroptimisationAlarm, alarm_eval
from alphaloop.stages.context import StageContext
from alphaloop.stages.gold_eval import combine, gold_eval, gold_results
from alphaloop.stages.lm_eval import counting_samples, greedy_test_eval, samples_curve
from alphaloop.stages.loop import StageLoop


class RLStageConfig(PolicyGradientSettings, StageConfig):
    """The step's sampling and schedule; the algorithm's own knobs are `PolicyGradientSettings`."""

    kind: Literal["rl"]
    steps: int = Field(100, ge=1, le=10**7, description="RL steps (one rollout batch each)")
    prompts_per_step: int = Field(16, ge=1, le=65536)
    group_size: int = Field(8, ge=1, le=4096, description="completions sampled per prompt (G)")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0, le=10**6)
    max_new_tokens: int | None = Field(None, ge=1, le=65536,
                                       description="default: the env's longest correct completion + 1")
    lr: float = Field(2e-4, gt=0)
    schedule: Schedule = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    dynamic_sampling: bool = Field(False, description="drop groups whose rewards are all equal and refill (DAPO)")
    max_refill_rounds: int = Field(4, ge=0, le=1000)
    format_reward: float = Field(0.0, ge=0, description="bonus for a parseable final answer")
    reward: Literal["verifier", "reward_model"] = Field("verifier", description="the reward: the env's verifier "
                                                        "(RLVR) or an earlier reward_model stage's model (RLHF)")
    reward_model: str | None = Field(None, description="the reward_model stage whose model is the reward; default: "
                                     "the latest one")
    reward_aggregate: Aggregate | None = Field(None, description="override the ensemble's aggregation (mean, "
                                               "mean_minus_std, min)")
    start_from: str | None = Field(None, description="the trained stage whose policy this stage starts from (and "
                                   "whose policy is the KL reference), or 'pretrained' (the recipe's [policy] "
                                   "pretrained model); default: the latest")
    reward_members: int | None = Field(None, ge=1, le=16, description="score with only the first k members of "
                                       "the reward model's ensemble (default: all)")
    gold_prompts: int = Field(48, ge=0, le=10**5, description="RLHF on an env with a hidden gold: fixed test prompts "
                              "on which gold, proxy and sqrt(KL) are measured at every eval (0 = off)")
    gold_samples: int = Field(4, ge=1, le=1024, description="samples per gold prompt")
    alarm_prompts: int = Field(48, ge=0, le=10**5, description="RLHF: fixed training prompts on which the "
                               "over-optimisation alarm spends alarm_pairs + 1 careful labels per eval (0 = off)")
    alarm_pairs: int = Field(2, ge=1, le=64, description="pairs of the policy's samples labelled per alarm prompt")
    alarm_agreement: float = Field(0.7, ge=0, le=1, description="the alarm fires when the reward model orders the "
                                   "policy's own labelled sample pairs like the labels less often than this")
    alarm_window: int = Field(2, ge=1, le=1000, description="evals pooled for the alarm's agreement")
    early_stop: bool = Field(False, description="when the alarm fires, stop and keep the policy of the best eval")
    sample_budget: int | None = Field(None, ge=1, description="stop once the rollouts have generated this many actions "
                                      "(an agent's tool calls, or completions; vineppo's value roll-outs included): "
                                      "compares estimators at equal samples")
    eval_every: int = Field(25, ge=1)
    eval_problems: int = Field(200, ge=1, le=10**6)
    checkpoint_every: int = Field(25, ge=1)

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        if self.start_from == "pretrained" and not run.policy.pretrained:
            return ["start_from: 'pretrained' is the recipe's [policy] pretrained model, and this recipe sets none"]
        if self.start_from not in (None, "pretrained") and self.start_from not in trained:
            return [f"start_from: {self.start_from!r} is not an earlier stage that trains a policy "
                    f"({', '.join(trained) or 'none'}) or 'pretrained'"]
        if self.algorithm == "vineppo" and (self.reward != "verifier" or self.format_reward):
            return ["algorithm: 'vineppo' estimates state values from roll-outs scored by the env's verifier; it "
                    "needs reward = 'verifier' and format_reward = 0"]
        if self.reward != "reward_model":
            return [] if self.reward_model is None else ["reward_model: only read with reward = 'reward_model'"]
        earlier = [s.name for s in run.stages[:next(i for i, s in enumerate(run.stages) if s is self)]
                   if s.kind == "reward_model"]
        if not earlier:
            return ["reward: 'reward_model' needs an earlier reward_model stage"]
        if self.reward_model is not None and self.reward_model not in earlier:
            return [f"reward_model: {self.reward_model!r} is not an earlier reward_model stage "
                    f"({', '.join(earlier)})"]
        return []

    @model_validator(mode="after")
    def _groups_need_two(self) -> RLStageConfig:
        # rloo, grpo and dr_grpo score each completion against the others of its group: a group of
        # one has no baseline (rloo divides by G - 1, grpo by a std of one sample).
        if self.group_size < 2 and self.algorithm in ("rloo", "grpo", "dr_grpo"):
            raise ValueError(f"group_size: {self.algorithm} compares the completions of a prompt with each "
                             f"other and needs group_size >= 2, got {self.group_size} (or use reinforce / ppo)")
        return self


def rewards_of(groups: list[list[Episode]], format_reward: float) -> torch.Tensor:
    """[G, n] rewards: the verifier's 0/1 plus an optional bonus for a parseable answer."""
    return torch.tensor([[e.reward + (format_reward if e.info.get("answer") is not None else 0.0) for e in g]
                         for g in groups])


def collect_groups(ctx: StageContext, cfg: RLStageConfig, policy, env, step: int, max_new_tokens: int, workers=None,
                   rescore=None):
    """Sample prompts_per_step groups (returned with their problems); with dynamic sampling, replace
    all-equal-reward groups (DAPO).

    With `workers` (the recipe's `[scale]`, `collect/text_workers.py`) the sampling of each draw is split
    into one seeded chunk per worker; without, it runs here from one generator. `rescore(groups)`
    replaces each draw's verifier rewards (a reward model's, for RLHF).
    """
    rng = random.Random(ctx.seed("prompts", step))
    generator = torch.Generator().manual_seed(ctx.seed("sample", step))
    weights = None if workers is None else {k: v.detach() for k, v in policy.state_dict().items()}
    draws = 0

    def draw(count: int) -> tuple[list, list[list[Episode]]]:
        nonlocal draws
        problems = [env.sample_problem(rng, "train") for _ in range(count)]
        draws += 1
        if workers is None:
            drawn = policy_episodes(policy, env, problems, cfg.group_size, temperature=cfg.temperature,
                                    top_k=cfg.top_k, max_new_tokens=max_new_tokens, generator=generator)
        else:
            seeds = [ctx.seed("sample", step, draws, chunk) for chunk in range(workers.workers)]
            jobs = rollout_jobs(problems, workers.workers, seeds, cfg.group_size, cfg.temperature, cfg.top_k,
                                max_new_tokens)
            drawn = [group for chunk in workers.map(rollout, jobs, weights) for group in chunk]
        if rescore is not None:
            rescore(drawn)
        return problems, drawn

    problems, groups = draw(cfg.prompts_per_step)
    flat = zero_variance_groups(rewards_of(groups, cfg.format_reward))
    zero_frac = float(flat.float().mean())
    if cfg.dynamic_sampling:
        kept = [(p, g) for p, g, f in zip(problems, groups, flat.tolist()) if not f]
        for _ in range(cfg.max_refill_rounds):
            if len(kept) >= cfg.prompts_per_step:
                break
            fresh_problems, fresh = draw(cfg.prompts_per_step - len(kept))
            flags = zero_variance_groups(rewards_of(fresh, cfg.format_reward)).tolist()
            kept += [(p, g) for p, g, f in zip(fresh_problems, fresh, flags) if not f]
        if kept:  # else nothing informative at all: keep the batch
            kept = kept[: cfg.prompts_per_step]
            problems, groups = [p for p, _ in kept], [g for _, g in kept]
    return problems, groups, zero_frac


@contextlib.contextmanager
def _rollout_workers(ctx: StageContext, policy):
    """The recipe's `[scale]` workers for this stage's rollouts (collect/text_workers.py), or None when it
    spreads nothing (the default: one local worker, i.e. this process samples)."""
    scale = ctx.recipe.scale
    if not scale.spreads:
        yield None
        return
    factory = RolloutFactory(policy, ctx.recipe.env.name, dict(ctx.recipe.env.knobs))
    with make_workers(factory, backend=scale.backend, workers=scale.workers, address=scale.address,
                      threads=worker_threads(ctx.recipe.threads, scale.workers, scale.worker_threads),
                      load=load_policy_weights) as workers:
        yield workers


def step_metrics(stats: dict[str, float], episodes: list[Episode], rewards: torch.Tensor, zero_frac: float,
                 lr: float, began: float, sampled_at: float) -> dict[str, float]:
    """What a step logs: the update's statistics, then the rollouts' rewards, lengths and speed."""
    elapsed = max(time.time() - began, 1e-9)
    new_tokens = sum(len(e.action_ids) for e in episodes)
    agent = {} if "steps" not in episodes[0].info else {  # multi-turn: actions, tool errors, harm
        f"agent_{key}": round(value, 6) for key, value in agent_metrics([episodes]).items()}
    return stats | agent | {
        "reward_mean": round(float(rewards.mean()), 6),
        "pass_rate": round(sum(e.success for e in episodes) / len(episodes), 6),
        "response_length": round(new_tokens / len(episodes), 3), "zero_variance_frac": round(zero_frac, 6),
        "truncated_frac": round(sum(e.truncated for e in episodes) / len(episodes), 6), "lr": lr,
        "tokens_per_s": round(new_tokens / elapsed, 1), "samples_per_s": round(len(episodes) / elapsed, 1),
        "generation_s": round(sampled_at - began, 4),
    }


def run_rl(ctx: StageContext, cfg: RLStageConfig) -> dict[str, Any]:
    from alphaloop.policies.lm import LMPolicy

    env = ctx.make_env("train", seed=ctx.seed("env"))
    if cfg.algorithm == "ppo" and cfg.credit == "token" and getattr(env, "memory", 0):
        raise UserError(f"stages.{ctx.index}.credit: env {env.name!r} has memory {env.memory}, so each action is read "
                        "in its own context: ppo needs credit = 'turn' (or set the env's memory to 0)")
    max_new_tokens = cfg.max_new_tokens or env.max_completion_chars + 1
    loop = StageLoop(ctx, cfg.steps, cfg.eval_every, cfg.checkpoint_every)
    resumed = loop.resume()
    policy = LMPolicy.load(resumed) if resumed else ctx.initial_policy(cfg.start_from)
    gold = cfg.reward == "reward_model" and cfg.gold_prompts and hasattr(env, "gold")
    watched = cfg.reward == "reward_model" and cfg.alarm_prompts and hasattr(env, "careful_label")
    # The frozen start: the KL penalty's reference, and the baseline of the gold's KL and the alarm.
    reference = frozen_start(ctx, cfg) if cfg.beta > 0 or gold or watched else None
    if cfg.algorithm == "ppo":
        policy.add_value_head()
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = adamw(params, cfg.lr, cfg.weight_decay, betas=(0.9, 0.99))
    baseline, generated = 0.0, 0
    if loop.state:
        optimizer.load_state_dict(loop.state["optimizer"])
        baseline, generated = loop.state["baseline"], loop.state.get("generated", 0)
    proxy = rescore = None
    evaluate = greedy_test_eval(ctx, policy, cfg.eval_problems)
    if cfg.reward == "reward_model":
        proxy = reward_model_of(ctx, cfg)
        rescore = partial(proxy_rewards, proxy)
        if gold:
            evaluate = combine(evaluate, gold_eval(ctx, policy, reference, proxy, ctx.make_env("test"),
                                                   cfg.gold_prompts, cfg.gold_samples, max_new_tokens))
    alarm = None
    if watched:
        alarm = OveroptimisationAlarm(cfg.alarm_agreement, cfg.alarm_window)
        if loop.state and "alarm" in loop.state:
            alarm.load_state_dict(loop.state["alarm"])
        evaluate = combine(evaluate, alarm_eval(ctx, alarm, policy, reference, proxy, env,
                                                cfg.alarm_prompts, cfg.alarm_pairs, max_new_tokens))
    stopping = lambda: alarm is not None and cfg.early_stop and alarm.fired_at is not None  # noqa: E731
    evaluate = counting_samples(evaluate, lambda: generated)
    loop.eval_at_start(evaluate)

    with _rollout_workers(ctx, policy) as workers:  # None: sample in this process
        for step in loop.steps():
            if stopping():
                break
            began = time.time()
            policy.model.eval()
            problems, groups, zero_frac = collect_groups(ctx, cfg, policy, env, step, max_new_tokens, workers, rescore)
            episodes = [e for g in groups for e in g]
            rewards = rewards_of(groups, cfg.format_reward)
            turn_advantages, credit_metrics = None, {}
            if cfg.algorithm == "vineppo":
                turn_advantages, credit_metrics = vine_credit(ctx, cfg, policy, env, problems, groups, rewards, step,
                                                              max_new_tokens)
            sampled_at = time.time()
            batch, baseline = rollout_batch(policy, episodes, rewards, cfg, reference if cfg.beta > 0 else None,
                                            baseline, turn_advantages)
            lr = cfg.lr * multiplier(cfg.schedule, step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            stats = update(policy, optimizer, params, batch, cfg, max_new_tokens,
                           torch.Generator().manual_seed(ctx.seed("minibatch", step)))
            generated += sum(e.info.get("steps", 1) for e in episodes) + credit_metrics.get("vine_actions", 0)
            metrics = step_metrics(stats, episodes, rewards, zero_frac, lr, began, sampled_at) | credit_metrics
            ctx.log(step + 1, **metrics, generated_actions=generated)
            if cfg.sample_budget is not None and generated >= cfg.sample_budget:
                loop.total = step + 1   # the budget is spent: this step is the last (evaluated, checkpointed)
            loop.end_step(step + 1, policy, f"reward {metrics['reward_mean']:.3f}", evaluate,
                          lambda baseline=baseline, generated=generated: {
                              "optimizer": optimizer.state_dict(), "baseline": baseline, "generated": generated,
                              **({"alarm": alarm.state_dict()} if alarm else {})})
            if loop.total == step + 1:
                break
            if stopping():
                break
    if stopping():
        policy.load_state_dict(alarm.best_weights)   # the policy from before the alarm
    result = finish_rl(loop, policy, alarm, cfg.early_stop)
    return result | {"curves": result.get("curves", {}) | samples_curve(ctx.stage.name, loop.evals)}


def vine_credit(ctx: StageContext, cfg: RLStageConfig, policy, env, problems: list, groups: list[list[Episode]],
                rewards: torch.Tensor, step: int, max_new_tokens: int) -> tuple[list[list[float]], dict[str, float]]:
    """VinePPO's per-action advantages for the step's episodes, from `vine_samples` Monte Carlo roll-outs
    per intermediate state (`collect/agent_values.py`, `learners/turn_credit.py`); the roll-outs' cost is
    logged so that estimators can be compared at equal samples."""
    generator = torch.Generator().manual_seed(ctx.seed("vine", step))
    values, cost = state_values(policy, env, problems, groups, cfg.vine_samples, cfg.temperature, cfg.top_k,
                                max_new_tokens, generator)
    flat_values = [v for per_group in values for v in per_group]
    advantages = vine_advantages(rewards.reshape(-1).tolist(), flat_values)
    return advantages, {"vine_states": cost.states, "vine_rollouts": cost.rollouts, "vine_actions": cost.actions}


def frozen_start(ctx: StageContext, cfg: RLStageConfig):
    """The policy the stage started from, frozen: the KL reference and the gold's and alarm's baseline."""
    reference = ctx.initial_policy(cfg.start_from)
    reference.requires_grad_(False)
    return reference


def reward_model_of(ctx: StageContext, cfg: RLStageConfig) -> RewardEnsemble:
    """The reward model (ensemble) of the named or latest earlier reward_model stage."""
    names = [n for n, r in ctx.results.items() if "reward_model_dir" in r]
    name = cfg.reward_model or names[-1]
    ensemble = RewardEnsemble.load(ctx.run_dir / ctx.results[name]["reward_model_dir"], cfg.reward_aggregate)
    if cfg.reward_members is not None:
        if cfg.reward_members > len(ensemble.members):
            raise UserError(f"reward_members: {cfg.reward_members} but reward model {name!r} has "
                            f"{len(ensemble.members)} member(s)")
        ensemble.members = ensemble.members[:cfg.reward_members]
    return ensemble


def proxy_rewards(proxy: RewardEnsemble, groups: list[list[Episode]]) -> None:
    """Replace each episode's reward by the reward model's score (kept in info["proxy"] too)."""
    episodes = [e for g in groups for e in g]
    for episode, score in zip(episodes, proxy.score(episodes)):
        episode.rewards = [score]
        episode.info["proxy"] = score


def finish_rl(loop: StageLoop, policy, alarm: OveroptimisationAlarm | None, early_stop: bool) -> dict[str, Any]:
    """The result: final greedy accuracy and gold measurement (of the kept policy, after an early stop),
    the alarm's verdict, the gold-vs-KL curve and Gao's RL form fitted to it."""
    kept = alarm.best_step if alarm is not None and early_stop and alarm.fired_at is not None else None
    at_end = [r for r in loop.evals if kept is None or r["step"] == kept]
    greedy = [r for r in at_end if r["split"] == "test" and r["decoder"] == "greedy"]
    final = {"test_greedy_accuracy": greedy[-1]["metrics"]["accuracy"]} if greedy else {}
    gold, curves, fits = gold_results(loop.evals, kept)
    if alarm is not None:
        final |= {"alarm_step": alarm.fired_at, "alarm_labels": alarm.labels}
        if kept is not None:
            final["kept_step"] = kept
    result = loop.finish(policy, final | gold)
    return result | ({"curves": curves} if curves else {}) | ({"fits": fits} if fits else {})
