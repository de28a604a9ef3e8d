"""Linear layers through oneDNN on CPU: the same fp32 product as `F.linear`, on a faster kernel.

PyTorch sends a CPU `F.linear` to MKL's sgemm. On the AMD EPYC machines this project is built
and measured on, MKL runs the shapes of a 1M-parameter Llama (64-1000 rows x 128-768 columns)
at about 70 GFLOP/s on one core, while oneDNN, which PyTorch also ships (it backs the
`torch.ops.mkldnn._linear_pointwise` op that `torch.compile` emits for CPU linears), runs the
same products at 120-175 GFLOP/s: benchmarks/rollout.py and benchmarks/rl_step.py measure the
difference. Both accumulate in fp32; results agree to fp32 rounding.

`linear(x, w, b)` picks oneDNN for fp32 CPU products big enough to repay its higher per-call
cost (MIN_MACS; the choice depends on shapes only, so runs stay reproducible), with a hand-written
backward (oneDNN has no autograd formula registered):

    y = x W^T + b,   dL/dx = g W,   dL/dW = g^T x,   dL/db = sum_rows g

each product again through oneDNN. (Reordering weights into oneDNN's blocked layout once per
rollout did not pay for itself at 8-32 decoding steps, so weights stay plain tensors.)
Everything falls back to `F.linear` when oneDNN is missing, for other dtypes and devices, and
when `ALPHALOOP_ONEDNN=0` is set (to compare the two).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F


def _resolve():
    """The oneDNN linear op if this PyTorch build has it and it reproduces `F.linear`, else None."""
    if os.environ.get("ALPHALOOP_ONEDNN", "1") == "0" or not torch.backends.mkldnn.is_available():
        return None
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None:
        return None
    try:
        generator = torch.Generator().manual_seed(0)
        x, w = torch.randn(5, 16, generator=generator), torch.randn(8, 16, generator=generator)
        b = torch.randn(8, generator=generator)
        if not torch.allclose(op(x, w, b, "none", [], ""), F.linear(x, w, b), atol=1e-5, rtol=1e-5):
            return None
    except (RuntimeError, NotImplementedError):
        return None
    return op


_OP = _resolve()


def enabled() -> bool:
    """Whether products run on oneDNN (False: plain `F.linear`)."""
    return _OP is not None


def set_enabled(on: bool) -> None:
    """Switch oneDNN on (if this build has it) or off, e.g. to measure what it brings."""
    global _OP
    _OP = _resolve() if on else None


# oneDNN costs about 10 us more per call than MKL; below about a million multiply-adds (one
# decoding step's LM head, any product at batch 1) that outweighs its faster kernel.
MIN_MACS = 1 << 20


class _Linear(torch.autograd.Function):
    """y = x W^T + b on oneDNN, with the three backward products on oneDNN too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _OP(x, w, b, "none", [], "")

    @staticmethod
    @torch.autograd.function.once_differentiable  # the products below are not differentiable again
    def backward(ctx, grad: torch.Tensor):
        x, w = ctx.saved_tensors
        op = torch.ops.mkldnn._linear_pointwise  # not _OP: it may have been switched off since
        g = grad.reshape(-1, grad.shape[-1])
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = op(g, w.t(), None, "none", [], "").view(x.shape)  # g W
        if ctx.needs_input_grad[1]:
            dw = op(g.t(), x.reshape(-1, x.shape[-1]).t(), None, "none", [], "")  # g^T x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = g.sum(0)
        return dx, dw, db


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear(x, w, b)` (w: [out, in]), on oneDNN for fp32 CPU products of at least MIN_MACS."""
    if (_OP is None or x.dtype != torch.float32 or w.dtype != torch.float32 or x.device.type != "cpu"
            or x.numel() * w.shape[0] < MIN_MACS):
        return F.linear(x, w, b)
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad)):
        return _Linear.apply(x, w, b)
    return _OP(x, w, b, "none", [], "")
