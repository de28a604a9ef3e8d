"""Direct preference optimisation: the policy learns from pairwise preferences without a reward model.

DPO (Rafailov et al. 2023, eq. 7) treats beta * log(pi / pi_ref) as an implicit reward and fits it
to the preferences with the Bradley-Terry likelihood:

    h = [log pi(y_c|x) - log pi_ref(y_c|x)] - [log pi(y_r|x) - log pi_ref(y_r|x)]
    L_DPO = -mean log sigmoid(beta * h)

IPO (Azar et al. 2023, eq. 17) regresses h on a fixed target instead, so deterministic
preferences cannot push the log-ratios to infinity:

    L_IPO = mean (h - 1 / (2 tau))^2          (tau plays beta's part)

Logged: the implicit rewards beta * log(pi / pi_ref) of chosen and rejected, their margin, and the
implicit-reward accuracy (the share of pairs where the chosen one's is higher).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Loss = Literal["sigmoid", "ipo"]


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float, loss: Loss = "sigmoid") -> tuple[torch.Tensor, dict[str, float]]:
    """(loss, stats) from sequence log-probs [B] of the policy and the reference on both responses."""
    if not chosen.shape == rejected.shape == ref_chosen.shape == ref_rejected.shape or chosen.dim() != 1:
        raise ValueError("chosen, rejected, ref_chosen, ref_rejected: expected four [B] tensors of one shape")
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    h = chosen_ratio - rejected_ratio
    if loss == "sigmoid":
        value = -F.logsigmoid(beta * h).mean()
    elif loss == "ipo":
        value = (h - 1.0 / (2.0 * beta)).pow(2).mean()
    else:
        raise ValueError(f"loss must be 'sigmoid' or 'ipo', got {loss!r}")
    with torch.no_grad():
        stats = {"loss": float(value), "reward_chosen": float(beta * chosen_ratio.mean()),
                 "reward_rejected": float(beta * rejected_ratio.mean()), "margin": float(beta * h.mean()),
                 "accuracy": float((h > 0).float().mean())}
    return value, stats
