"""The optimizer the language-model stages share: AdamW, fused where PyTorch has the kernel."""

from __future__ import annotations

import torch


def adamw(params: list[torch.Tensor], lr: float, weight_decay: float,
          betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019, decoupled weight decay) over `params`, as one fused kernel
    for every parameter's update on CPU and CUDA instead of a Python loop of small ops (at a 1M
    parameter model the loop costs a few milliseconds a step)."""
    fused = bool(params) and params[0].device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas, fused=fused)
