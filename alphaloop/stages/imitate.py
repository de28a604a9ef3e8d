"""Stage `imitate`: behaviour cloning of the env's expert (SFT), with periodic held-out eval.

Each step draws a fresh batch of training problems and expert demonstrations from a seed
derived from (recipe seed, stage, step): the data cursor *is* the step, so a resumed run sees
exactly the batches an uninterrupted one would.

`verify_batch_size > 0` adds verification rows to every step (alphaloop.scorers.judge_data):
`<prompt><candidate><check> -> yes|no`, labelled by the env's verifier, with their own token-mean
loss added to the imitation loss, so judge@K (the policy rating its own candidates) has a real
training signal. They come from a separate random stream, so the demonstrations are the same
batches with or without them.

`random_positions = L` trains with randomised position ids (Ruoss et al. 2023): each row's tokens get
a sorted random subset of 0..L-1 instead of 0..n-1 (`policies.positions.random_positions`), so ids
and distances of sequences longer than any trained on are seen in training; generation keeps the
default ids. `curriculum` steps an env knob through easier settings first (`stages/curriculum.py`).
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import torch
from pydantic import Field

from alphaloop.agent_memory import uses_memory
from alphaloop.batch import episode_batch, pack, pack_episodes
from alphaloop.collect import demonstrations
from alphaloop.errors import UserError
from alphaloop.learners.imitate import completion_imitation_loss, imitation_loss
from alphaloop.learners.schedules import descend, warmup_cosine
from alphaloop.policies.positions import random_positions
from alphaloop.specs import StageConfig
from alphaloop.stages.context import StageContext
from alphaloop.stages.curriculum import Curriculum, CurriculumConfig
from alphaloop.stages.lm_eval import greedy_test_eval
from alphaloop.stages.loop import Evaluate, StageLoop


class ImitateStageConfig(StageConfig):
    kind: Literal["imitate"]
    steps: int = Field(1500, ge=1, le=10**7, description="optimizer steps")
    batch_size: int = Field(64, ge=1, le=65536, description="demonstrations per step")
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate")
    warmup_steps: int = Field(50, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    eval_every: int = Field(250, ge=1, description="greedy eval on the test split every N steps")
    eval_problems: int = Field(200, ge=1, le=10**6)
    checkpoint_every: int = Field(250, ge=1)
    verify_batch_size: int = Field(0, ge=0, le=65536, description="verification rows per step that train the judge@K "
                                                        "verdict (0 = none); see alphaloop.scorers.judge_data")
    random_positions: int = Field(0, ge=0, le=65536, description="train with randomised position ids: each row's "
                                  "tokens get a sorted random subset of 0..N-1 (Ruoss et al. 2023); 0 = off")
    curriculum: CurriculumConfig | None = Field(None, description="step an env knob through easier settings first "
                                                                  "(e.g. digits_max 1, 2, 3), moving on when mastered")


def verification_loss(ctx: StageContext, policy, env, size: int, step: int) -> tuple[torch.Tensor, float]:
    """Token-mean NLL of the verdicts of `size` fresh verification rows, and the share labelled yes."""
    from alphaloop.scorers.judge_data import verification_rows

    rng = random.Random(ctx.seed("verify", step))
    generator = torch.Generator().manual_seed(ctx.seed("verify-sample", step))
    contexts, verdicts, positive = verification_rows(env, policy, rng, size, generator)
    input_ids, attention, verdict_mask = pack(contexts, verdicts, policy.pad_id)
    return imitation_loss(policy, input_ids, attention, verdict_mask), positive


def with_curriculum(evaluate: Evaluate, curriculum: Curriculum, policy) -> Evaluate:
    """`evaluate`, then the curriculum's mastery check on the current setting (which may move it on)."""

    def evaluate_at(step: int) -> tuple[list[dict], str]:
        records, note = evaluate(step)
        return records, f"{note}  {curriculum.check(step, policy)}"

    return evaluate_at


def run_imitate(ctx: StageContext, cfg: ImitateStageConfig) -> dict[str, Any]:
    from alphaloop.policies.lm import LMPolicy

    loop = StageLoop(ctx, cfg.steps, cfg.eval_every, cfg.checkpoint_every)
    resumed = loop.resume()
    policy = LMPolicy.load(resumed) if resumed else ctx.initial_policy()
    if cfg.random_positions and policy.positions is not None:
        raise UserError(f"stages.{ctx.index}.random_positions: the policy has its own position rule "
                        f"({policy.positions.name!r}); randomised ids replace the default ones only")
    curriculum = Curriculum(ctx, cfg.curriculum, (loop.state or {}).get("curriculum")) if cfg.curriculum else None
    env = curriculum.env if curriculum else ctx.make_env("train", seed=ctx.seed("env"))
    evaluate = greedy_test_eval(ctx, policy, cfg.eval_problems)
    if curriculum:
        evaluate = with_curriculum(evaluate, curriculum, policy)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    loss_ema = None
    if loop.state:
        optimizer.load_state_dict(loop.state["optimizer"])
        loss_ema = loop.state["loss_ema"]

    policy.model.train()
    for step in loop.steps():
        began = time.time()
        # The data cursor is the step: a resumed run draws exactly the batches an uninterrupted one would.
        if curriculum:
            env = curriculum.env  # the level may have moved on at the last eval
        episodes = demonstrations(env, policy, random.Random(ctx.seed("batch", step)), cfg.batch_size)
        lr = cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        if uses_memory(episodes) and not cfg.random_positions:   # one row per action: no padded forward
            batch = episode_batch(episodes, policy.pad_id)
            loss = completion_imitation_loss(policy, batch)
            tokens = int(batch.lengths.sum()) + int(batch.prompt_lens.sum())
        else:
            input_ids, attention, completion_mask = pack_episodes(episodes, policy.pad_id)
            positions = None
            if cfg.random_positions:
                draws = torch.Generator().manual_seed(ctx.seed("positions", step))
                try:
                    positions = random_positions(attention, cfg.random_positions, draws)
                except ValueError as exc:
                    raise UserError(f"stages.{ctx.index}.random_positions: {exc}") from None
            loss = imitation_loss(policy, input_ids, attention, completion_mask, position_ids=positions)
            tokens = int(attention.sum())
        value, extra = loss.item(), {}  # `loss` in the log is the imitation loss alone
        if cfg.verify_batch_size:
            verify_loss, positive = verification_loss(ctx, policy, env, cfg.verify_batch_size, step)
            loss = loss + verify_loss
            extra = {"verify_loss": round(verify_loss.item(), 6), "verify_yes_frac": round(positive, 4)}
        grad_norm = descend(optimizer, params, loss, lr, cfg.grad_clip)
        loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
        done = step + 1
        ctx.log(done, loss=round(value, 6), lr=lr, grad_norm=round(float(grad_norm), 6),
                tokens_per_s=round(tokens / max(time.time() - began, 1e-9), 1), **extra)
        loop.end_step(done, policy, f"loss {loss_ema:.3f}", evaluate,
                      lambda loss_ema=loss_ema: {"optimizer": optimizer.state_dict(), "loss_ema": loss_ema,
                                                 **({"curriculum": curriculum.state()} if curriculum else {})})

    final = {"loss_ema": round(loss_ema, 6)} | (curriculum.summary() if curriculum else {})
    if loop.evals:
        final["test_greedy_accuracy"] = loop.evals[-1]["metrics"]["accuracy"]
    return loop.finish(policy, final)
