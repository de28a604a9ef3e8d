"""Linear layers on the faster of PyTorch's two CPU kernels: the same fp32 product as `F.linear`.

PyTorch sends a CPU `F.linear` to MKL's sgemm. PyTorch also ships oneDNN (it backs the
`torch.ops.mkldnn._linear_pointwise` op that `torch.compile` emits for CPU linears), and which
is faster depends on the CPU. Measured at the shapes of a 1M-parameter Llama (64-1000 rows x
128-768 columns) on one core:

* AMD EPYC: MKL about 70 GFLOP/s, oneDNN 120-175 GFLOP/s -- oneDNN, about 2x;
* Intel Xeon (Sapphire Rapids): MKL 130-190 GFLOP/s, oneDNN 70-170 GFLOP/s -- MKL.

So oneDNN is used on AMD CPUs and MKL elsewhere; `ALPHALOOP_ONEDNN=1` or `=0` forces the
choice (to compare the two: benchmarks/rollout.py, benchmarks/train.py). The choice depends on
the machine and the shapes only, so runs on one machine stay reproducible. Both accumulate in
fp32; results agree to fp32 rounding.

`linear(x, w, b)` picks oneDNN for fp32 CPU products big enough to repay its higher per-call
cost (MIN_MACS), with a hand-written backward (oneDNN has no autograd formula registered):

    y = x W^T + b,   dL/dx = g W,   dL/dW = g^T x,   dL/db = sum_rows g

each product again through oneDNN. `prepare(w)` and `product(x, prepared, ...)` are the
inference-only pair that decoding uses: the weight is laid out once for the kernel that will
multiply it (transposed for MKL, whose sgemm is fastest without a transpose flag) and the
residual add rides on the product (x + y W^T in one call).
Everything falls back to `F.linear` when oneDNN is missing or not chosen, and for other
dtypes and devices.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.nn.functional as F


def _cpu_vendor() -> str:
    """The CPU's vendor string ('AuthenticAMD', 'GenuineIntel', ...), or '' if unknown."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _available():
    """The oneDNN linear op if this PyTorch build has it and it reproduces `F.linear`, else None."""
    if not torch.backends.mkldnn.is_available():
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


def _resolve():
    """oneDNN's op if it is available and chosen (forced by ALPHALOOP_ONEDNN, else on AMD CPUs)."""
    choice = os.environ.get("ALPHALOOP_ONEDNN", "")
    if choice == "0" or (choice != "1" and _cpu_vendor() != "AuthenticAMD"):
        return None
    return _available()


def available() -> bool:
    """Whether this PyTorch build has a working oneDNN linear (chosen or not)."""
    return _available() is not None


_OP = _resolve()


def enabled() -> bool:
    """Whether products run on oneDNN (False: plain `F.linear`)."""
    return _OP is not None


def set_enabled(on: bool) -> None:
    """Switch oneDNN on (if this build has it) or off, e.g. to measure what it brings."""
    global _OP
    _OP = _available() if on else None


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


class Prepared(NamedTuple):
    """A weight laid out for `product`: [in, out] for MKL (`transposed`), [out, in] for oneDNN."""

    weight: torch.Tensor
    transposed: bool


def prepare(w: torch.Tensor) -> Prepared:
    """Lay out `w` [out, in] once for repeated inference products (`product`)."""
    if _OP is None or w.dtype != torch.float32 or w.device.type != "cpu":
        return Prepared(w.t().contiguous(), True)
    return Prepared(w.contiguous(), False)


def product(x: torch.Tensor, w: Prepared, bias: torch.Tensor | None = None,
            residual: torch.Tensor | None = None) -> torch.Tensor:
    """x W^T (+ bias) for a 2-D x [rows, in], without autograd (inference only). With `residual`,
    the product is added to it in place and it is returned: a residual stream stays in one buffer
    (a fresh one per product would have to be fetched into cache before every write)."""
    if w.transposed:
        if residual is None:
            return torch.mm(x, w.weight) if bias is None else torch.addmm(bias, x, w.weight)
        if bias is not None:
            residual.add_(bias)
        return residual.addmm_(x, w.weight)
    if _OP is None or x.shape[0] * w.weight.numel() < MIN_MACS:
        y = F.linear(x, w.weight, bias)
    else:
        y = _OP(x, w.weight, bias, "none", [], "")
    return y if residual is None else residual.add_(y)
