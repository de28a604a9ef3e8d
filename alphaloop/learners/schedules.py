"""Learning-rate schedules, as multipliers or rates computed from the step alone (so a resumed run
gets exactly the rates an uninterrupted one would).

- `warmup_cosine`: linear warmup to 1, then half a cosine down to `min_ratio` (Loshchilov & Hutter
  2017, "SGDR", without restarts; the LM stages' default);
- `warmup_constant`: linear warmup to 1, then constant;
- `cosine_between`: from `start` at the first of `count` steps to `end` at the last (AlphaZero's
  rounds: late rounds see a buffer of strong games that changes little, and a small step averages
  over them instead of chasing the newest).
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["constant", "cosine"]


def warmup_cosine(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup to 1, then cosine decay to `min_ratio` at `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_constant(step: int, warmup: int) -> float:
    """LR multiplier: linear warmup over `warmup` steps (none for 0), then 1."""
    return min(1.0, (step + 1) / max(1, warmup))


def multiplier(schedule: Schedule, step: int, total: int, warmup: int, min_ratio: float) -> float:
    """The multiplier of step `step` (0-based) of `total` under `schedule`."""
    if schedule == "cosine":
        return warmup_cosine(step, total, warmup, min_ratio)
    return warmup_constant(step, warmup)


def cosine_between(start: float, end: float, index: int, count: int) -> float:
    """start + (end - start) (1 - cos(pi t / (count - 1))) / 2 written as SGDR's

        lr_t = end + (start - end) (1 + cos(pi t / (count - 1))) / 2,

    so index 0 gets `start` and index count - 1 gets `end`."""
    frac = index / max(count - 1, 1)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * frac))


def descend(optimizer, params, loss, lr: float, grad_clip: float) -> float:
    """One optimizer step of the LM stages at learning rate `lr`: backpropagate `loss`, clip the
    gradient's global norm to `grad_clip` (Pascanu et al. 2013) and step; returns the norm before
    clipping. Every step's rate is set here, from the schedule, so a resumed run uses the same rates."""
    import torch

    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip))
    optimizer.step()
    return grad_norm
