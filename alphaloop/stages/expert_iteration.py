"""Stage `expert_iteration`: rounds of sample k -> keep what the filter accepts -> imitate the kept.

Search finds better answers than the policy gives on average; learning distils them back (the
AlphaZero loop with sampling + a filter as the search). Per round r (STaR, Zelikman et al. 2022;
ReST-EM, Singh et al. 2023; `learners/expert_iteration.py` for the maths):

    prompts_per_round training prompts --sampler--> k samples each
        --filter (verifier | majority answer | best by a reward model, value head or own verdict)--> K_r
        --steps_per_round SFT steps on K_r (token-mean NLL, learners/imitate.py)--> pi_{r+1}

Compared with policy gradient it has no ratios, baselines or critic, and it only ever learns from
successes: a prompt with no accepted sample teaches nothing (GRPO's all-wrong groups likewise), and
a wrong sample is never pushed down. `from_start = true` restarts every round's fine-tune from the
stage's starting policy (ReST-EM's choice, against drift); the default continues from the last.

A round's kept set is stored in every checkpoint, so a run resumed mid-round trains on exactly the
set it was training on; the samples of round r and the batches of step s are drawn from seeds of
(recipe seed, stage, r or s), so a resumed run ends where an uninterrupted one does.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import torch
from pydantic import Field

from alphaloop.batch import pack
from alphaloop.collect import policy_episodes
from alphaloop.errors import UserError
from alphaloop.learners.expert_iteration import accepted
from alphaloop.learners.imitate import imitation_loss
from alphaloop.learners.schedules import descend, warmup_cosine
from alphaloop.specs import RunSpec, StageConfig
from alphaloop.stages.context import StageContext
from alphaloop.stages.lm_eval import counting_samples, greedy_test_eval, samples_curve
from alphaloop.stages.loop import StageLoop


class ExpertIterationStageConfig(StageConfig):
    kind: Literal["expert_iteration"]
    rounds: int = Field(4, ge=1, le=10**5, description="sample -> filter -> imitate rounds")
    prompts_per_round: int = Field(512, ge=1, le=10**6, description="training prompts sampled per round")
    samples: int = Field(8, ge=1, le=4096, description="samples per prompt (k)")
    filter: Literal["verifier", "majority", "reward_model", "value", "judge"] = Field(
        "verifier", description="which samples are kept: the env's verifier accepts them; their answer is the "
        "majority answer of the k (no labels needed); the best by the latest reward_model stage; the best by the "
        "policy's own value head (best@k; a PPO-trained policy) or by its own verdict (judge@k)")
    keep_per_prompt: int = Field(4, ge=1, le=4096, description="at most this many distinct kept samples per prompt")
    min_agreement: float = Field(0.5, gt=0, le=1, description="filter 'majority': the winning answer needs at "
                                 "least this share of the k votes")
    reward_model: str | None = Field(None, description="filter 'reward_model': the reward_model stage (default: "
                                     "the latest)")
    min_score: float | None = Field(None, description="scored filters: keep only samples scoring at least this "
                                    "(default: 0.5 for 'value', a P(correct); 0 for 'judge', its log-odds of 'yes'; "
                                    "none for 'reward_model', whose best are kept by rank)")
    temperature: float = Field(1.0, gt=0)
    top_k: int = Field(0, ge=0, le=10**6)
    max_new_tokens: int | None = Field(None, ge=1, le=65536,
                                       description="default: the env's longest correct completion + 1")
    steps_per_round: int = Field(50, ge=1, le=10**6, description="SFT steps on each round's kept samples")
    batch_size: int = Field(64, ge=1, le=65536, description="kept samples per SFT step")
    lr: float = Field(3e-4, gt=0, description="peak AdamW learning rate (each round: warmup + cosine)")
    warmup_steps: int = Field(5, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    from_start: bool = Field(False, description="fine-tune every round from the stage's starting policy "
                             "(ReST-EM) instead of the last round's")
    start_from: str | None = Field(None, description="the trained stage whose policy this stage starts from; "
                                   "default: the latest")
    eval_every: int = Field(50, ge=1, description="greedy test eval every N SFT steps")
    eval_problems: int = Field(200, ge=1, le=10**6)
    checkpoint_every: int = Field(50, ge=1)

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        problems = []
        if self.start_from is not None and self.start_from not in trained:
            problems.append(f"start_from: {self.start_from!r} is not an earlier stage that trains a policy "
                            f"({', '.join(trained) or 'none'})")
        if self.filter == "reward_model":
            earlier = [s.name for s in run.stages[:next(i for i, s in enumerate(run.stages) if s is self)]
                       if s.kind == "reward_model"]
            if not earlier:
                problems.append("filter: 'reward_model' needs an earlier reward_model stage")
            elif self.reward_model is not None and self.reward_model not in earlier:
                problems.append(f"reward_model: {self.reward_model!r} is not an earlier reward_model stage "
                                f"({', '.join(earlier)})")
        elif self.reward_model is not None:
            problems.append("reward_model: only read with filter = 'reward_model'")
        if self.min_score is not None and self.filter in ("verifier", "majority"):
            problems.append(f"min_score: only read by the scored filters (reward_model, value, judge), not "
                            f"filter = {self.filter!r}")
        return problems


Kept = list[tuple[list[int], list[int]]]   # (prompt ids, completion ids + EOS) per kept sample


def collect_round(ctx: StageContext, cfg: ExpertIterationStageConfig, policy, env, round_: int, max_new_tokens: int,
                  scorer=None) -> tuple[Kept, dict[str, float]]:
    """Round `round_`'s E-step: sample k completions of fresh training prompts, keep what the filter
    accepts (`learners/expert_iteration.accepted`); return the kept samples and the round's statistics.

    `kept_precision` is the verifier's verdict on the kept samples: 1 by construction for the verifier
    filter, and for the label-free filters the measure of how often they teach a wrong answer."""
    began = time.time()
    rng = random.Random(ctx.seed("prompts", round_))
    generator = torch.Generator().manual_seed(ctx.seed("sample", round_))
    problems = [env.sample_problem(rng, "train") for _ in range(cfg.prompts_per_round)]
    was_training = policy.model.training
    policy.model.eval()
    groups = policy_episodes(policy, env, problems, cfg.samples, temperature=cfg.temperature, top_k=cfg.top_k,
                             max_new_tokens=max_new_tokens, generator=generator)
    policy.model.train(was_training)
    how = cfg.filter if cfg.filter in ("verifier", "majority") else "scores"
    kept: Kept = []
    correct = prompts_kept = 0
    for group in groups:
        scores = scorer.score(group) if scorer is not None else None
        picks = accepted(group, how, cfg.keep_per_prompt, scores, cfg.min_agreement, min_score(cfg))
        prompts_kept += bool(picks)
        for i in picks:
            episode = group[i]
            completion = list(episode.action_ids)
            if episode.truncated:   # a kept sample must teach the policy to stop
                completion.append(policy.eos_id)
            kept.append((list(episode.prompt_ids), completion))
            correct += episode.success
    episodes = [e for g in groups for e in g]
    stats = {"samples_drawn": len(episodes),
             "sample_pass_rate": round(sum(e.success for e in episodes) / len(episodes), 6),
             "kept": len(kept), "kept_correct": correct, "prompts_kept_frac": round(prompts_kept / len(groups), 6),
             "kept_precision": round(correct / len(kept), 6) if kept else 0.0,
             "generation_s": round(time.time() - began, 3)}
    return kept, stats


def min_score(cfg: ExpertIterationStageConfig) -> float | None:
    """The least score a scored filter keeps: the knob, else the learned verifier's own yes/no line."""
    if cfg.min_score is not None:
        return cfg.min_score
    return {"value": 0.5, "judge": 0.0}.get(cfg.filter)


def reward_scorer(ctx: StageContext, cfg: ExpertIterationStageConfig):
    """The filter 'reward_model' scorer: the named (or latest) reward_model stage's model."""
    from alphaloop.scorers.reward_model import RewardEnsemble

    names = [n for n, r in ctx.results.items() if "reward_model_dir" in r]
    if not names:
        raise UserError("filter: 'reward_model' needs an earlier reward_model stage")
    return RewardEnsemble.load(ctx.run_dir / ctx.results[cfg.reward_model or names[-1]]["reward_model_dir"])


def own_scorer(ctx: StageContext, cfg: ExpertIterationStageConfig, policy):
    """The filters 'value' and 'judge': the policy scores its own samples (best@k by its PPO value head,
    judge@k by its verdict on `<prompt><candidate><check>`), as the round's current policy -- the
    search decoders of `eval` as the teacher. SFT on the kept samples does not train the value head or
    the verdict, so the scorer drifts as the policy changes; `kept_precision` measures it. None for
    the other filters."""
    if cfg.filter == "value":
        from alphaloop.scorers.value import ValueScorer

        try:
            return ValueScorer(policy, policy_name=cfg.start_from or "the starting policy")
        except ValueError as exc:
            raise UserError(f"stages.{ctx.index}.filter: 'value': {exc}") from None
    if cfg.filter == "judge":
        from alphaloop.scorers.judge import JudgeScorer

        return JudgeScorer(policy)
    return None


def run_expert_iteration(ctx: StageContext, cfg: ExpertIterationStageConfig) -> dict[str, Any]:
    from alphaloop.policies.lm import LMPolicy

    env = ctx.make_env("train", seed=ctx.seed("env"))
    max_new_tokens = cfg.max_new_tokens or env.max_completion_chars + 1
    total = cfg.rounds * cfg.steps_per_round
    loop = StageLoop(ctx, total, cfg.eval_every, cfg.checkpoint_every)
    resumed = loop.resume()
    policy = LMPolicy.load(resumed) if resumed else ctx.initial_policy(cfg.start_from)
    scorer = reward_scorer(ctx, cfg) if cfg.filter == "reward_model" else own_scorer(ctx, cfg, policy)
    start_weights = ({k: v.detach().clone() for k, v in ctx.initial_policy(cfg.start_from).state_dict().items()}
                     if cfg.from_start else None)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    kept: Kept = []
    drawn, rounds = 0, []
    if loop.state:
        optimizer.load_state_dict(loop.state["optimizer"])
        kept, drawn, rounds = loop.state["kept"], loop.state["drawn"], loop.state["rounds"]
    evaluate = counting_samples(greedy_test_eval(ctx, policy, cfg.eval_problems), lambda: drawn)
    loop.eval_at_start(evaluate)

    policy.model.train()
    loss = float("nan")
    for step in loop.steps():
        round_, within = divmod(step, cfg.steps_per_round)
        if within == 0:   # the round's E-step: sample, filter, and (ReST-EM) restart the fine-tune
            if start_weights is not None:
                policy.load_state_dict(start_weights)
                optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
            kept, stats = collect_round(ctx, cfg, policy, env, round_, max_new_tokens, scorer)
            drawn += stats["samples_drawn"]
            rounds.append({"round": round_ + 1, **stats, "samples_drawn_total": drawn})
            ctx.log(step, kind="round", round=round_ + 1, **stats, samples_drawn_total=drawn)
        began = time.time()
        lr = cfg.lr * warmup_cosine(within, cfg.steps_per_round, cfg.warmup_steps, cfg.min_lr_ratio)
        if kept:   # a round that kept nothing has nothing to teach: its steps leave the policy as it is
            rng = random.Random(ctx.seed("batch", step))
            batch = [kept[i] for i in rng.sample(range(len(kept)), min(cfg.batch_size, len(kept)))]
            input_ids, attention, completion_mask = pack([p for p, _ in batch], [c for _, c in batch], policy.pad_id)
            nll = imitation_loss(policy, input_ids, attention, completion_mask)
            grad_norm = descend(optimizer, params, nll, lr, cfg.grad_clip)
            loss = nll.item()
            ctx.log(step + 1, loss=round(loss, 6), lr=lr, grad_norm=round(grad_norm, 6), round=round_ + 1,
                    samples_drawn_total=drawn,
                    tokens_per_s=round(int(attention.sum()) / max(time.time() - began, 1e-9), 1))
        loop.end_step(step + 1, policy, f"round {round_ + 1}/{cfg.rounds} kept {len(kept)} loss {loss:.3f}",
                      evaluate, lambda optimizer=optimizer, kept=kept, drawn=drawn: {
                          "optimizer": optimizer.state_dict(), "kept": kept, "drawn": drawn, "rounds": rounds})

    # Flat figures for the report's stage table; every round's statistics are in metrics.jsonl (kind "round").
    final: dict[str, Any] = {"samples_drawn": drawn, "first_round_pass_rate": rounds[0]["sample_pass_rate"],
                             "last_round_pass_rate": rounds[-1]["sample_pass_rate"],
                             "kept": sum(r["kept"] for r in rounds)}
    if final["kept"]:   # the verifier's verdict on everything kept: how often the filter taught a wrong answer
        final["kept_precision"] = round(sum(r["kept_correct"] for r in rounds) / final["kept"], 6)
    if loop.evals:
        final["test_greedy_accuracy"] = loop.evals[-1]["metrics"]["accuracy"]
    return loop.finish(policy, final) | {"curves": samples_curve(ctx.stage.name, loop.evals)}
