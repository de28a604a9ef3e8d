"""Knowledge distillation: a student learns a teacher's next-token distributions, or its samples.

Notation: at completion position t of row b, p_s = softmax(student logits) and p_t = softmax(teacher
logits) over the whole vocabulary V; m_{b,t} masks in completion tokens (the prompt and padding, and
an agent env's inserted tokens, are out). Every loss is a token-mean, like imitation's:

    L = sum_{b,t} m_{b,t} D(p_t, p_s)_{b,t} / sum_{b,t} m_{b,t}

The per-token divergences D (`token_divergence`):

    reverse_kl   KL(p_s || p_t) = sum_v p_s(v) [log p_s(v) - log p_t(v)]
                 mode-seeking: the student puts its mass where the teacher's is, and may drop some of
                 the teacher's modes (MiniLLM, Gu et al. 2024; the GKD default, Agarwal et al. 2024).
    forward_kl   KL(p_t || p_s) = sum_v p_t(v) [log p_t(v) - log p_s(v)]
                 mean-seeking: the student covers every token the teacher might say. On the teacher's
                 own completions this is word-level KD (Hinton et al. 2015; Kim & Rush 2016).
    jsd          the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024, "On-policy
                 distillation of language models"), with M = beta p_t + (1 - beta) p_s:
                     JSD(beta) = beta KL(p_t || M) + (1 - beta) KL(p_s || M)
                 bounded by log 2 at beta = 1/2; as beta -> 0 it is beta * forward KL to first order,
                 as beta -> 1 it is (1 - beta) * reverse KL.

Sequence-level KD (Kim & Rush 2016, "Sequence-Level Knowledge Distillation", with the teacher's
mode approximated by its samples) is plain imitation of the teacher's completions:

    L_nll = - sum_{b,t} m_{b,t} log p_s(y_{b,t}) / sum_{b,t} m_{b,t}

Where the completions come from is the stage's business (`stages/distill.py`): the teacher's samples
(off-policy: supervised KD), the student's own samples (on-policy: GKD with lambda = 1), or both.
The gradient never flows through the sampling, as in GKD.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Divergence = Literal["reverse_kl", "forward_kl", "jsd"]
Loss = Literal["divergence", "nll"]


def token_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, divergence: Divergence,
                     beta: float = 0.5) -> torch.Tensor:
    """D(p_t, p_s) at every position: logits [..., V] of both models -> [...] (see the module docstring).

    Computed from log-softmaxes in float32, so a token one model gives ~0 probability costs no NaN."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"teacher_logits: expected the student's shape {tuple(student_logits.shape)} (one "
                         f"vocabulary), got {tuple(teacher_logits.shape)}")
    log_s = torch.log_softmax(student_logits.float(), dim=-1)
    log_t = torch.log_softmax(teacher_logits.float(), dim=-1)
    if divergence == "reverse_kl":
        return (log_s.exp() * (log_s - log_t)).sum(-1)       # E_{v ~ p_s} [log p_s(v) - log p_t(v)]
    if divergence == "forward_kl":
        return (log_t.exp() * (log_t - log_s)).sum(-1)       # E_{v ~ p_t} [log p_t(v) - log p_s(v)]
    if divergence == "jsd":
        if not 0.0 < beta < 1.0:
            raise ValueError(f"beta: the generalised JSD needs 0 < beta < 1, got {beta}")
        # log M = log(beta p_t + (1 - beta) p_s), a logsumexp so tiny probabilities stay exact
        log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log(1.0 - beta)]), dim=0)
        kl_t = (log_t.exp() * (log_t - log_m)).sum(-1)       # KL(p_t || M)
        kl_s = (log_s.exp() * (log_s - log_m)).sum(-1)       # KL(p_s || M)
        return beta * kl_t + (1.0 - beta) * kl_s
    raise ValueError(f"divergence: expected reverse_kl, forward_kl or jsd, got {divergence!r}")


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(values * mask) / sum(mask): the token-mean over the completion tokens."""
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor,
                 divergence: Divergence, beta: float = 0.5) -> torch.Tensor:
    """Token-mean of `token_divergence` over `mask` [...]: the GKD / word-level KD loss."""
    return masked_mean(token_divergence(student_logits, teacher_logits, divergence, beta), mask)


def distillation_step_loss(student, teacher, batch, loss: Loss, divergence: Divergence,
                           beta: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats) of one batch of completions (a `CompletionBatch`, shared vocabulary).

    The teacher's logits are computed without gradient (it is frozen); the student's with. `loss`
    'divergence' is `distill_loss` with `divergence`; 'nll' is sequence-level KD, L_nll above. The
    stats always hold the reverse KL of the batch (`reverse_kl`, per token), whatever is optimised,
    so runs of every setting can be compared on one axis."""
    mask = batch.mask
    logprobs, student_logits, _ = student.completion_logprobs(batch)
    with torch.no_grad():
        teacher_logits = teacher.completion_logprobs(batch)[1]
    if loss == "nll":
        value = -masked_mean(logprobs, mask)
    elif loss == "divergence":
        value = distill_loss(student_logits, teacher_logits, mask, divergence, beta)
    else:
        raise ValueError(f"loss: expected 'divergence' or 'nll', got {loss!r}")
    with torch.no_grad():
        reverse = masked_mean(token_divergence(student_logits, teacher_logits, "reverse_kl"), mask)
    return value, {"reverse_kl": float(reverse), "tokens": float(mask.sum())}
