"""Stage `distill`: knowledge distillation of an earlier stage's policy (the teacher, optionally searching
with maj@K) into a student of another size.

One step, for `batch_size` fresh training prompts:

    off-policy rows:  teacher --teacher_decoder (sample | greedy | maj@K)--> one completion per prompt
    on-policy rows:   student --sample at `temperature`--> one completion per prompt
    loss:             per-token divergence D(p_t, p_s) over the full vocabulary at every completion token
                      (GKD, Agarwal et al. 2024), or with loss = 'nll' the student's NLL of the teacher's
                      completions (sequence-level KD, Kim & Rush 2016)       -> AdamW step

`mode` picks the rows: 'off_policy' all teacher, 'on_policy' all student (the student learns on the
states it visits itself, so it is corrected where it actually goes wrong), 'mixed' a fraction
`on_policy_fraction` of the prompts from the student and the rest from the teacher (GKD's lambda, as a
fixed share of every batch rather than a coin per batch). The formulas are in learners/distill.py;
docs/distillation.md has a table of what each combination computes.

maj@K is the searching teacher: K samples per prompt, and the first one whose parsed answer is the
majority answer becomes the completion the student learns from (a prompt where no sample has an answer
is skipped), so the student imitates a teacher that votes, as expert iteration distils search.

Each step's prompts and both samplers' generators are seeded from (recipe seed, stage, step), so a
resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from alphaloop.batch import episode_batch
from alphaloop.collect import policy_episodes
from alphaloop.episode import Episode
from alphaloop.errors import UserError
from alphaloop.evals.evaluate import parse_decoder
from alphaloop.learners.distill import Divergence, Loss, distillation_step_loss
from alphaloop.learners.expert_iteration import accepted
from alphaloop.learners.schedules import descend, warmup_cosine
from alphaloop.policies.arch import LMArch
from alphaloop.specs import RunSpec, StageConfig
from alphaloop.stages.context import StageContext
from alphaloop.stages.lm_eval import greedy_test_eval
from alphaloop.stages.loop import StageLoop

TEACHER_DECODERS = ("greedy", "sample", "maj")


class DistillStageConfig(StageConfig):
    kind: Literal["distill"]
    teacher: str | None = Field(None, description="the earlier stage whose policy teaches, or 'pretrained' (the "
                                "recipe's [policy] pretrained model); default: the latest trained stage")
    teacher_decoder: str = Field("sample", description="how the teacher writes the off-policy completions: "
                                 "'sample' (one sample at `temperature`), 'greedy', or 'maj@K' (K samples, keep "
                                 "one whose answer is the majority answer)")
    mode: Literal["off_policy", "on_policy", "mixed"] = Field(
        "mixed", description="whose completions the loss is on: the teacher's (off_policy), the student's own "
                             "samples (on_policy, GKD), or both in one batch (mixed)")
    on_policy_fraction: float = Field(0.5, ge=0, le=1, description="mode = 'mixed': the share of each batch's "
                                      "prompts the student completes (GKD's lambda); the rest the teacher does")
    loss: Loss = Field("divergence", description="'divergence': the per-token `divergence` to the teacher's "
                       "distribution; 'nll': the student's NLL of the teacher's completions (sequence-level KD, "
                       "off_policy only)")
    divergence: Divergence = Field("reverse_kl", description="reverse_kl = KL(student || teacher), forward_kl = "
                                   "KL(teacher || student), or jsd (GKD's generalised JSD with jsd_beta)")
    jsd_beta: float = Field(0.5, gt=0, lt=1, description="divergence = 'jsd': the mixture weight beta of the "
                            "teacher in M = beta p_t + (1 - beta) p_s")
    student: LMArch | None = Field(None, description="the size of a fresh student ([stages.student], the fields "
                                   "of [policy.arch]); default: the recipe's [policy.arch]")
    student_from: str | None = Field(None, description="start the student from this earlier stage's policy (or "
                                     "'pretrained') instead of a fresh one; excludes `student`")
    steps: int = Field(500, ge=1, le=10**7, description="optimizer steps")
    batch_size: int = Field(64, ge=1, le=65536, description="prompts per step (one completion each)")
    lr: float = Field(3e-3, gt=0, description="peak AdamW learning rate")
    warmup_steps: int = Field(25, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the teacher's and the student's "
                               "completions (the divergences compare the raw, temperature-1 distributions)")
    eval_every: int = Field(100, ge=1, description="greedy eval of the student on the test split every N steps")
    eval_problems: int = Field(200, ge=1, le=10**6)
    checkpoint_every: int = Field(100, ge=1)

    @field_validator("teacher_decoder")
    @classmethod
    def _teacher_decoder(cls, value: str) -> str:
        try:
            name, _ = parse_decoder(value)
        except ValueError:
            name = None
        if name not in TEACHER_DECODERS:   # pass@K, best@K, ... score or pick without writing one answer to learn
            raise ValueError("the teacher writes the completions the student learns from: expected 'sample', "
                             "'greedy' or 'maj@K' (K >= 1)")
        return value

    @model_validator(mode="after")
    def _one_student(self) -> DistillStageConfig:
        if self.student is not None and self.student_from is not None:
            raise ValueError(f"student_from: {self.student_from!r} starts the student from a trained policy, whose "
                             "size is its own; give either [stages.student] (a fresh student) or student_from")
        if self.loss == "nll" and self.mode != "off_policy":
            raise ValueError(f"loss: 'nll' imitates the teacher's completions (sequence-level KD) and needs mode = "
                             f"'off_policy'; mode {self.mode!r} trains on the student's own samples, where only a "
                             "divergence to the teacher says anything")
        return self

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        problems = []
        for field, name in (("teacher", self.teacher), ("student_from", self.student_from)):
            if name == "pretrained" and not run.policy.pretrained:
                problems.append(f"{field}: 'pretrained' is the recipe's [policy] pretrained model, and this recipe "
                                "sets none")
            elif name not in (None, "pretrained") and name not in trained:
                problems.append(f"{field}: {name!r} is not an earlier stage that trains a policy "
                                f"({', '.join(trained) or 'none'}) or 'pretrained'")
        if self.teacher is None and not trained and not run.policy.pretrained:
            problems.append("teacher: distillation needs a trained teacher: an earlier stage that trains a policy "
                            "(e.g. imitate or rl), or [policy] pretrained with teacher = 'pretrained'")
        return problems


def frozen_teacher(ctx: StageContext, cfg: DistillStageConfig):
    """The teacher: evaluation mode, no gradients, never updated."""
    # A stage's final policy by name, or the recipe's pretrained model for 'pretrained'.
    teacher = ctx.initial_policy(cfg.teacher or ctx.latest_policy_name() or "pretrained")
    teacher.requires_grad_(False)
    teacher.model.eval()
    return teacher


def fresh_student(ctx: StageContext, cfg: DistillStageConfig):
    """The policy the student starts as: a fresh Llama of `student` (default the recipe's size), or
    stage `student_from`'s policy."""
    if cfg.student_from is not None:
        return ctx.initial_policy(cfg.student_from)
    return ctx.fresh_policy(cfg.student or ctx.recipe.policy.arch, ctx.seed("init"))


def check_shared_vocabulary(teacher, student) -> None:
    """Per-token divergences compare distributions over one vocabulary, and the teacher's token ids
    are fed to the student as they are: both need the very same tokenizer."""
    same = (teacher.tokenizer.get_vocab() == student.tokenizer.get_vocab()
            and (teacher.bos_id, teacher.eos_id, teacher.pad_id) == (student.bos_id, student.eos_id, student.pad_id))
    if not same:
        raise UserError(f"student: its tokenizer ({len(student.tokenizer)} tokens) differs from the teacher's "
                        f"({len(teacher.tokenizer)} tokens); distillation compares next-token distributions over one "
                        "vocabulary, so the student must share the teacher's (start it from a policy with the "
                        "teacher's tokenizer, or distil a teacher built from [policy.arch] on this env)")


def majority_samples(groups: list[list[Episode]]) -> list[Episode | None]:
    """Per prompt, the first sample whose parsed answer (`info['answer']`) is the group's majority
    answer (self-consistency, Wang et al. 2023), or None where no sample has an answer. Which sample
    is right does not enter: the teacher votes without the verifier, as maj@K does at test time."""
    picks = [accepted(group, "majority", keep=1, min_agreement=0.0) for group in groups]
    return [group[pick[0]] if pick else None for group, pick in zip(groups, picks)]


def teacher_completions(teacher, env, problems: list, decoder: str, temperature: float,
                        generator: torch.Generator) -> list[Episode]:
    """One completion by the teacher per problem, as `decoder` writes it (maj@K skips prompts where
    none of the K samples has an answer)."""
    name, k = parse_decoder(decoder)
    if name == "greedy":
        return [g[0] for g in policy_episodes(teacher, env, problems, 1, temperature=0.0)]
    if name == "sample":
        return [g[0] for g in policy_episodes(teacher, env, problems, 1, temperature=temperature, generator=generator)]
    groups = policy_episodes(teacher, env, problems, k, temperature=temperature, generator=generator)
    return [e for e in majority_samples(groups) if e is not None]


def run_distill(ctx: StageContext, cfg: DistillStageConfig) -> dict[str, Any]:
    from alphaloop.policies.lm import LMPolicy

    env = ctx.make_env("train", seed=ctx.seed("env"))
    teacher = frozen_teacher(ctx, cfg)
    loop = StageLoop(ctx, cfg.steps, cfg.eval_every, cfg.checkpoint_every)
    resumed = loop.resume()
    student = LMPolicy.load(resumed) if resumed else fresh_student(ctx, cfg)
    check_shared_vocabulary(teacher, student)
    evaluate = greedy_test_eval(ctx, student, cfg.eval_problems)
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    loss_ema = None
    if loop.state:
        optimizer.load_state_dict(loop.state["optimizer"])
        loss_ema = loop.state["loss_ema"]
    # Share of each batch's prompts the student completes itself.
    on_policy = {"off_policy": 0.0, "on_policy": 1.0, "mixed": cfg.on_policy_fraction}[cfg.mode]
    n_student = round(cfg.batch_size * on_policy)

    student.model.train()
    for step in loop.steps():
        began = time.time()
        # The data cursor is the step: prompts and both samplers depend on (seed, stage, step) only.
        rng = random.Random(ctx.seed("prompts", step))
        problems = [env.sample_problem(rng, "train") for _ in range(cfg.batch_size)]
        own = [g[0] for g in policy_episodes(student, env, problems[:n_student], 1, temperature=cfg.temperature,
                                              generator=torch.Generator().manual_seed(ctx.seed("student", step)))
               ] if n_student else []
        taught = teacher_completions(teacher, env, problems[n_student:], cfg.teacher_decoder, cfg.temperature,
                                     torch.Generator().manual_seed(ctx.seed("teacher", step))
                                     ) if n_student < cfg.batch_size else []
        sampled_at = time.time()
        lr = cfg.lr * warmup_cosine(step, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio)
        metrics: dict[str, Any] = {"lr": lr}
        if taught:  # the searching teacher's accuracy on this batch: what the student is shown
            metrics["teacher_accuracy"] = round(sum(e.success for e in taught) / len(taught), 6)
            metrics["teacher_kept_frac"] = round(len(taught) / (cfg.batch_size - n_student), 6)
        if own:
            metrics["student_accuracy"] = round(sum(e.success for e in own) / len(own), 6)
        rows = own + taught
        if rows:  # else maj@K found no answer to any prompt: nothing to learn from this step
            batch = episode_batch(rows, student.pad_id)
            loss, stats = distillation_step_loss(student, teacher, batch, cfg.loss, cfg.divergence, cfg.jsd_beta)
            grad_norm = descend(optimizer, params, loss, lr, cfg.grad_clip)
            value = loss.item()
            loss_ema = value if loss_ema is None else 0.95 * loss_ema + 0.05 * value
            tokens = int(batch.mask.sum()) + int(batch.prompt_lens[batch.prompt_of].sum())
            metrics |= {"loss": round(value, 6), "reverse_kl": round(stats["reverse_kl"], 6),
                        "grad_norm": round(float(grad_norm), 6),
                        "tokens_per_s": round(tokens / max(time.time() - began, 1e-9), 1)}
        metrics["generation_s"] = round(sampled_at - began, 4)
        done = step + 1
        ctx.log(done, **metrics)
        info = "no rows" if loss_ema is None else f"loss {loss_ema:.4f}"
        loop.end_step(done, student, info, evaluate,
                      lambda loss_ema=loss_ema: {"optimizer": optimizer.state_dict(), "loss_ema": loss_ema})

    student_parameters, teacher_parameters = student.num_parameters, teacher.num_parameters
    final = {"loss_ema": None if loss_ema is None else round(loss_ema, 6),
             "student_parameters": student_parameters, "teacher_parameters": teacher_parameters,
             "parameter_ratio": round(student_parameters / teacher_parameters, 6)}
    if loop.evals:
        final["test_greedy_accuracy"] = loop.evals[-1]["metrics"]["accuracy"]
    return loop.finish(student, final)
