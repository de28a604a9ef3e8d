"""The reward-model loss: Bradley-Terry on pairwise preferences.

A labeller preferred y_c over y_r for prompt x. Bradley & Terry (1952) model that choice as

    P(y_c > y_r | x) = sigmoid(r(x, y_c) - r(x, y_r))

and the reward model r_theta maximises the likelihood of the labels (Christiano et al. 2017;
Ouyang et al. 2022, eq. 1):

    L(theta) = -mean log sigmoid(r_theta(x, y_c) - r_theta(x, y_r) - m)

with an optional margin m >= 0 (Touvron et al. 2023, Llama 2: a larger gap for clearer
preferences); m = 0 is plain Bradley-Terry. Only reward differences are identified, so the
scale's offset is arbitrary; the gap's mean and the pairwise accuracy are what it learned.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: float | torch.Tensor = 0.0,
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats) for rewards of the chosen and rejected responses, both [B]."""
    if chosen.shape != rejected.shape or chosen.dim() != 1:
        raise ValueError(f"chosen and rejected: expected two [B] tensors of one shape, got {tuple(chosen.shape)} "
                         f"and {tuple(rejected.shape)}")
    gap = chosen - rejected
    loss = -F.logsigmoid(gap - margin).mean()
    stats = {"loss": float(loss.detach()), "accuracy": float((gap > 0).float().mean()),
             "gap": float(gap.detach().mean())}
    return loss, stats
