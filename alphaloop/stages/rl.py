"""Stage `rl`: reinforcement learning with verifiable rewards (RLVR).

One step (Shao et al. 2024's GRPO loop, with the DAPO and Dr. GRPO knobs of Yu et al. 2025 and
Liu et al. 2025, and PPO with a critic as the fifth option):

    prompts  --sampler-->  G completions each  --verifier-->  rewards
             --advantages (reinforce | rloo | grpo | dr_grpo | GAE for ppo)-->
             --clipped surrogate (+ beta * k3 KL to the frozen reference)-->  AdamW step

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
from pydantic import BaseModel, ConfigDict, Field

from alphaloop.collect import policy_episodes
from alphaloop.episode import Episode
from alphaloop.learners.imitate import warmup_cosine


class RLStageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["rl"]
    name: str | None = None
    algorithm: Literal["reinforce", "rloo", "grpo", "dr_grpo", "ppo"] = "grpo"
    steps: int = Field(100, ge=1, description="RL steps (one rollout batch each)")
    prompts_per_step: int = Field(16, ge=1)
    group_size: int = Field(8, ge=1, description="completions sampled per prompt (G)")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int | None = Field(None, ge=1, description="default: the env's longest correct completion + 1")
    lr: float = Field(2e-4, gt=0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    epochs: int = Field(1, ge=1, description="optimisation passes over each rollout batch (PPO epochs)")
    minibatches: int = Field(1, ge=1, description="minibatches per epoch")
    clip_low: float = Field(0.2, ge=0, description="epsilon_low of the clipped ratio")
    clip_high: float = Field(0.2, ge=0, description="epsilon_high; > clip_low is DAPO's clip-higher")
    aggregation: Literal["token-mean", "sequence-mean", "constant"] = "token-mean"
    beta: float = Field(0.0, ge=0, description="KL(pi || reference) coefficient (k3); 0 loads no reference")
    dynamic_sampling: bool = Field(False, description="drop groups whose rewards are all equal and refill (DAPO)")
    max_refill_rounds: int = Field(4, ge=0)
    mask_truncated: bool = Field(True, description="completions cut at max_new_tokens get no gradient")
    format_reward: float = Field(0.0, ge=0, description="bonus for a parseable final answer")
    baseline_momentum: float = Field(0.9, ge=0, lt=1, description="REINFORCE moving-average baseline")
    gamma: float = Field(1.0, ge=0, le=1, description="PPO/GAE discount")
    lam: float = Field(0.95, ge=0, le=1, description="PPO/GAE lambda")
    value_coef: float = Field(0.5, ge=0)
    value_clip: float = Field(0.2, ge=0)
    eval_every: int = Field(25, ge=1)
    eval_problems: int = Field(200, ge=1)
    checkpoint_every: int = Field(25, ge=1)


def completion_tensor(rows: list[list[float]], shape: tuple[int, int]) -> torch.Tensor:
    """Per-completion-token values (e.g. the sampler's log-probs) as a right-padded [N, Tc] tensor."""
    out = torch.zeros(shape)
    for row, values in enumerate(rows):
        if values:
            out[row, : len(values)] = torch.tensor(values)
    return out


def minibatch_of(t: torch.Tensor, rows: torch.Tensor, width: int) -> torch.Tensor:
    """Rows `rows` of a per-sequence [N] or per-token [N, Tc] tensor, per-token ones cut to `width`
    columns (`CompletionBatch.rows` drops the padding columns no row of a minibatch needs)."""
    return t[rows, :width] if t.dim() == 2 else t[rows]


def rewards_of(groups: list[list[Episode]], format_reward: float) -> torch.Tensor:
    """[G, n] rewards: the verifier's 0/1 plus an optional bonus for a parseable answer."""
    return torch.tensor([[e.reward + (format_reward if e.info.get("answer") is not None else 0.0) for e in g]
                         for g in groups])


def collect_groups(ctx, cfg: RLStageConfig, policy, env, step: int, max_new_tokens: int, workers=None):
    """Sample prompts_per_step groups; with dynamic sampling, replace all-equal-reward groups (DAPO).

    With `workers` (the recipe's `[scale]`, `scale/rollouts.py`) the sampling of each draw is split
    into one seeded chunk per worker; without, it runs here from one generator.
    """
    from alphaloop.learners.advantages import zero_variance_groups
    from alphaloop.scale.rollouts import rollout, rollout_jobs

    rng = random.Random(ctx.seed("prompts", step))
    generator = torch.Generator().manual_seed(ctx.seed("sample", step))
    weights = None if workers is None else {k: v.detach() for k, v in policy.state_dict().items()}
    draws = 0

    def draw(count: int) -> list[list[Episode]]:
        nonlocal draws
        problems = [env.sample_problem(rng, "train") for _ in range(count)]
        draws += 1
        if workers is None:
            return policy_episodes(policy, env, problems, cfg.group_size, temperature=cfg.temperature,
                                   top_k=cfg.top_k, max_new_tokens=max_new_tokens, generator=generator)
        seeds = [ctx.seed("sample", step, draws, chunk) for chunk in range(workers.workers)]
        jobs = rollout_jobs(problems, workers.workers, seeds, cfg.group_size, cfg.temperature, cfg.top_k,
                            max_new_tokens)
        return [group for chunk in workers.map(rollout, jobs, weights) for group in chunk]

    groups = draw(cfg.prompts_per_step)
    flat = zero_variance_groups(rewards_of(groups, cfg.format_reward))
    zero_frac = float(flat.float().mean())
    if cfg.dynamic_sampling:
        kept = [g for g, f in zip(groups, flat.tolist()) if not f]
        for _ in range(cfg.max_refill_rounds):
            if len(kept) >= cfg.prompts_per_step:
                break
            fresh = draw(cfg.prompts_per_step - len(kept))
            flags = zero_variance_groups(rewards_of(fresh, cfg.format_reward)).tolist()
            kept += [g for g, f in zip(fresh, flags) if not f]
        groups = kept[: cfg.prompts_per_step] or groups  # nothing informative at all: keep the batch
    return groups, zero_frac


@contextlib.contextmanager
def _rollout_workers(ctx, policy):
    """The recipe's `[scale]` workers for this stage's rollouts (scale/rollouts.py), or None when it
    spreads nothing (the default: one local worker, i.e. this process samples)."""
    scale = ctx.recipe.scale
    if scale.backend == "local" and scale.workers == 1:
        yield None
        return
    from alphaloop.scale import make_workers, worker_threads
    from alphaloop.scale.rollouts import RolloutFactory, load_policy_weights

    factory = RolloutFactory(policy, ctx.recipe.env.name, dict(ctx.recipe.env.knobs))
    with make_workers(factory, backend=scale.backend, workers=scale.workers, address=scale.address,
                      threads=worker_threads(ctx.recipe.threads, scale.workers, scale.worker_threads),
                      load=load_policy_weights) as workers:
        yield workers


def run_rl(ctx, cfg: RLStageConfig) -> dict[str, Any]:
    from alphaloop.learners.advantages import compute_advantages, gae, update_baseline
    from alphaloop.learners.policy_gradient import clipped_value_loss, entropy_from_logits, policy_gradient_loss
    from alphaloop.learners.sequences import pack_completions
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.stages.eval import eval_problem_seed
    from alphaloop.stages.imitate import in_training_eval

    env = ctx.make_env("train", seed=ctx.seed("env"))
    test_env = ctx.make_env("test")
    test_problems = test_env.problems("test", cfg.eval_problems, seed=eval_problem_seed(ctx.recipe.seed, "test"))
    max_new_tokens = cfg.max_new_tokens or env.max_completion_chars + 1
    ppo = cfg.algorithm == "ppo"

    resumed = ctx.load_checkpoint()
    policy = LMPolicy.load(resumed[0]) if resumed else ctx.initial_policy()
    reference = None
    if cfg.beta > 0:  # the frozen policy the stage started from
        reference = ctx.initial_policy()
        reference.requires_grad_(False)
    if ppo:
        policy.add_value_head()
    params = [p for p in policy.parameters() if p.requires_grad]
    # fused: one kernel for every parameter's update instead of a Python loop of small ops.
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99),
                                  fused=params[0].device.type in ("cpu", "cuda"))
    start, baseline, evals = 0, 0.0, []
    if resumed:
        state = resumed[1]
        optimizer.load_state_dict(state["optimizer"])
        start, baseline, evals = state["step"], state["baseline"], state["evals"]
    if not evals and start == 0:
        evals.append(in_training_eval(ctx, policy, test_env, test_problems, 0))

    task = ctx.new_progress_task(cfg.steps, completed=start)
    with _rollout_workers(ctx, policy) as workers:  # None: sample in this process
        for step in range(start, cfg.steps):
            began = time.time()
            policy.model.eval()
            groups, zero_frac = collect_groups(ctx, cfg, policy, env, step, max_new_tokens, workers)
            sampled_at = time.time()
            episodes = [e for g in groups for e in g]
            rewards = rewards_of(groups, cfg.format_reward)
            # Completion tokens only, each prompt stored once (see learners/sequences.py and policies/prefix.py).
            batch = pack_completions([e.prompt_ids for e in episodes], [e.action_ids for e in episodes], policy.pad_id)
            mask = batch.mask
            # The sampler's log-probs are pi_old's (the raw model at this step's weights): no extra forward.
            old_logprobs = completion_tensor([e.logprobs for e in episodes], tuple(mask.shape))
            if cfg.mask_truncated:
                mask = mask * torch.tensor([0.0 if e.truncated else 1.0 for e in episodes])[:, None]
            ref_logprobs = None
            if reference is not None:
                with torch.no_grad():
                    ref_logprobs = reference.completion_logprobs(batch)[0]
            if ppo:
                with torch.no_grad():
                    old_values = policy.completion_logprobs(batch, return_values=True)[2]
                last = (mask.cumsum(1) == mask.sum(1, keepdim=True)) & (mask > 0)  # each row's final token
                token_rewards = last.float() * rewards.reshape(-1, 1)
                advantages, returns = gae(token_rewards, old_values, mask, cfg.gamma, cfg.lam)
                valid = advantages[mask > 0]
                advantages = (advantages - valid.mean()) / (valid.std() + 1e-8) * mask
            else:
                advantages = compute_advantages(cfg.algorithm, rewards, baseline=baseline).reshape(-1)
                if cfg.algorithm == "reinforce":
                    baseline = update_baseline(baseline, rewards.reshape(-1), cfg.baseline_momentum)

            lr = cfg.lr * (warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
                           if cfg.schedule == "cosine" else min(1.0, (step + 1) / max(1, cfg.warmup_steps)))
            for group in optimizer.param_groups:
                group["lr"] = lr
            policy.model.train()
            order_gen = torch.Generator().manual_seed(ctx.seed("minibatch", step))
            stats_sum: dict[str, float] = {}
            updates = 0
            for _ in range(cfg.epochs):
                order = torch.randperm(len(episodes), generator=order_gen)
                for rows in order.chunk(cfg.minibatches):
                    logprobs, logits, values = policy.completion_logprobs(batch.rows(rows), return_values=ppo)
                    take = partial(minibatch_of, rows=rows, width=logprobs.shape[1])
                    loss, stats = policy_gradient_loss(
                        logprobs, take(old_logprobs), take(advantages), take(mask),
                        ref_logprobs=None if ref_logprobs is None else take(ref_logprobs), beta=cfg.beta,
                        clip_low=cfg.clip_low, clip_high=cfg.clip_high, aggregation=cfg.aggregation,
                        max_tokens=max_new_tokens)
                    if ppo:
                        value_loss = clipped_value_loss(values, take(old_values), take(returns), take(mask),
                                                        clip=cfg.value_clip)
                        loss = loss + cfg.value_coef * value_loss
                        stats["value_loss"] = float(value_loss.detach())
                    with torch.no_grad():
                        stats["entropy"] = float(entropy_from_logits(logits.detach(), take(mask)))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
                    optimizer.step()
                    stats["loss"] = float(loss.detach())
                    for key, value in stats.items():
                        stats_sum[key] = stats_sum.get(key, 0.0) + value
                    updates += 1
            done = step + 1
            elapsed = max(time.time() - began, 1e-9)
            new_tokens = sum(len(e.action_ids) for e in episodes)
            metrics = {k: round(v / updates, 6) for k, v in stats_sum.items()}
            metrics.update(
                reward_mean=round(float(rewards.mean()), 6), pass_rate=round(sum(e.success for e in episodes) /
                                                                              len(episodes), 6),
                response_length=round(new_tokens / len(episodes), 3), zero_variance_frac=round(zero_frac, 6),
                truncated_frac=round(sum(e.truncated for e in episodes) / len(episodes), 6), lr=lr,
                tokens_per_s=round(new_tokens / elapsed, 1), samples_per_s=round(len(episodes) / elapsed, 1),
                generation_s=round(sampled_at - began, 4),
            )
            ctx.log(done, **metrics)
            info = f"reward {metrics['reward_mean']:.3f}"
            if done % cfg.eval_every == 0 or done == cfg.steps:
                policy.model.eval()
                evals.append(in_training_eval(ctx, policy, test_env, test_problems, done))
                info += f"  test greedy {evals[-1]['metrics']['accuracy']:.1%}"
            ctx.progress.update(task, completed=done, info=info)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                ctx.save_checkpoint(done, policy, {"optimizer": optimizer.state_dict(), "baseline": baseline,
                                                   "evals": evals})

    final = {"test_greedy_accuracy": evals[-1]["metrics"]["accuracy"]} if evals else {}
    return {"steps": cfg.steps, "final": final, "evals": evals,
            "policy_dir": ctx.save_final_policy(policy.save)}
