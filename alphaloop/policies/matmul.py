"""Linear layers on the faster of PyTorch's two CPU kernels, chosen by timing: the same fp32 product as `F.linear`.

PyTorch sends a CPU `F.linear` to MKL's sgemm. PyTorch also ships oneDNN (it backs the
`torch.ops.mkldnn._linear_pointwise` op that `torch.compile` emits for CPU linears), and which
is faster depends on the CPU, the shape and the thread count. Measured at the shapes of a
1M-parameter Llama (128-768 columns) on one core:

* AMD EPYC, 64-1000 rows: MKL about 70 GFLOP/s, oneDNN 120-175 GFLOP/s -- oneDNN, about 2x;
  yet on an AMD machine without AVX-512 the sampler (decoding products of a few dozen rows) ran
  slower on oneDNN. On a Zen 5 EPYC (AVX-512; MKL runs its AVX2 kernels on AMD CPUs, 96 GFLOP/s at
  best) oneDNN takes 0.6x MKL's time at 64 rows, but costs ~12 us more per call, so it loses below
  ~16-32 rows; the sampler there was 1.09x faster with oneDNN's decoding products (9 paired rounds);
* Intel Xeon (Sapphire Rapids): oneDNN 0.4-0.75x MKL's speed at 64-128 rows, 0.9-0.96x at
  1000-4000 rows -- MKL everywhere.

No rule by CPU vendor gets all of these right, so the choice is made by timing: the first
product of each shape class in a process times both kernels on that class's shape (a few
milliseconds, `measure`) and keeps the faster for the rest of the process. A shape class
(`ShapeClass`) is what decides the winner: the use (`decode`: the sampler's prepared products;
`forward`: an inference product; `train`: a product with its two backward products), the rows
rounded up to a power of two (at most MAX_TIMED_ROWS), the matrix's shape and the thread count.
oneDNN must beat MKL by MARGIN to be chosen: MKL is PyTorch's own path, and a near tie is not
worth a kernel switch. Each decision is also written to a small per-machine file
(`~/.cache/alphaloop/kernels.json`, or the file ALPHALOOP_KERNEL_CACHE names), keyed by CPU
model and PyTorch version, and later processes on the machine read it instead of timing again:
every run of a recipe, its `--resume` after a crash and its local workers use the same kernels,
so fp32 rounding, and with it every logged number, does not depend on one process's timings.
`ALPHALOOP_ONEDNN=1` or `=0` forces the choice (no timing, no file); use it to compare the two
(benchmarks/rollout.py, benchmarks/train.py). Both kernels accumulate in fp32; results agree to
fp32 rounding.

`linear(x, w, b)` takes oneDNN for fp32 CPU products big enough to repay its higher per-call
cost (MIN_MACS) where their class chose it, with a hand-written backward (oneDNN has no
autograd formula registered):

    y = x W^T + b,   dL/dx = g W,   dL/dW = g^T x,   dL/db = sum_rows g

each product again through oneDNN. `prepare(w)` and `product(x, prepared, ...)` are the
inference-only pair that decoding uses: the weight is laid out once for the kernel that will
multiply it (transposed for MKL, whose sgemm is fastest without a transpose flag) and the
residual add rides on the product (x + y W^T in one call).
Everything falls back to `F.linear` when oneDNN is missing or not chosen, under autocast (which
casts `F.linear`'s inputs; oneDNN would run in fp32), inside `torch.compile` (which picks its
own kernels), and for other dtypes and devices.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

Mode = Literal["auto", "on", "off"]
Use = Literal["decode", "forward", "train"]

# oneDNN costs about 10 us more per call than MKL; below about a million multiply-adds (one
# decoding step's LM head, any product at batch 1) that outweighs its faster kernel.
MIN_MACS = 1 << 20
MARGIN = 1.25          # oneDNN is chosen only when it takes under 1 / MARGIN of MKL's time
MAX_TIMED_ROWS = 256   # classes with more rows are timed at this many: per-call costs are amortised by then
DECODE_ROWS = 64       # rows a decoding product is timed at (`prepare` does not know the batch)
WARMUP = 3             # untimed calls per kernel first: one left oneDNN's first timed call ~30% slow
REPEATS = 10           # timed calls per kernel, alternating, the best kept (a decoding product: ~50 us)
TIMING_VERSION = 2     # part of the saved decisions' key: decisions made by an older timing are redone


class ShapeClass(NamedTuple):
    """What decides which kernel is faster: the use, rows (a power of two), the weight's shape, threads."""

    use: Use
    rows: int
    out_features: int
    in_features: int
    threads: int


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


def mode_from_env(value: str | None) -> Mode:
    """ALPHALOOP_ONEDNN's meaning: '1' forces oneDNN, '0' forces MKL, anything else times both."""
    return {"1": "on", "0": "off"}.get((value or "").strip(), "auto")  # type: ignore[return-value]


_OP = _available()
_MODE: Mode = mode_from_env(os.environ.get("ALPHALOOP_ONEDNN"))
_CHOICES: dict[ShapeClass, bool] = {}  # True: oneDNN won this class's timing


def available() -> bool:
    """Whether this PyTorch build has a working oneDNN linear (chosen or not)."""
    return _OP is not None


def mode() -> Mode:
    """'on' / 'off': forced (ALPHALOOP_ONEDNN or `set_enabled`); 'auto': chosen by timing per shape class."""
    return _MODE


def set_enabled(on: bool | None) -> None:
    """Force oneDNN on (if this build has it) or off, e.g. to measure what it brings; None: back to timing."""
    global _MODE
    _MODE = "auto" if on is None else ("on" if on else "off")


def enabled() -> bool:
    """Whether products run on oneDNN: forced on (and available), or in 'auto' mode chosen for at
    least one shape class so far (`choices()` says which)."""
    if _OP is None or _MODE == "off":
        return False
    return _MODE == "on" or any(_CHOICES.values())


def choices() -> dict[ShapeClass, bool]:
    """The timing decisions made so far in this process: shape class -> oneDNN chosen."""
    return dict(_CHOICES)


def describe() -> str:
    """One line for a benchmark's header: how products pick their kernel here, and what was picked."""
    if _OP is None:
        return "MKL (this PyTorch has no oneDNN linear)"
    if _MODE != "auto":
        return f"{'oneDNN' if _MODE == 'on' else 'MKL'} (forced by ALPHALOOP_ONEDNN / set_enabled)"
    if not _CHOICES:
        return "timed per shape class (none timed yet)"
    picked = [f"{c.use} {c.rows}x{c.in_features}->{c.out_features}: {'oneDNN' if on else 'MKL'}"
              for c, on in sorted(_CHOICES.items())]
    return "timed per shape class: " + ", ".join(picked)


def prefer_onednn(mkl_seconds: float, onednn_seconds: float, margin: float = MARGIN) -> bool:
    """The decision: oneDNN only if it is clearly faster (by `margin`); a tie goes to MKL."""
    return onednn_seconds * margin < mkl_seconds


def measure(shape: ShapeClass, repeats: int = REPEATS) -> tuple[float, float]:
    """Best seconds of (MKL, oneDNN) for one product of `shape` (for 'train': the forward product
    and both backward ones), the kernels timed alternately so load from other processes hits both
    alike. Random inputs from a private generator: the global RNG is left untouched."""
    op = _OP
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape.rows, shape.in_features, generator=g)
    w = torch.randn(shape.out_features, shape.in_features, generator=g)
    if shape.use == "decode":
        w_t = w.t().contiguous()
        kernels = (lambda: torch.mm(x, w_t), lambda: op(x, w, None, "none", [], ""))
    elif shape.use == "forward":
        kernels = (lambda: F.linear(x, w), lambda: op(x, w, None, "none", [], ""))
    else:
        grad = torch.randn(shape.rows, shape.out_features, generator=g)
        kernels = (lambda: (F.linear(x, w), torch.mm(grad, w), torch.mm(grad.t(), x)),
                   lambda: (op(x, w, None, "none", [], ""), op(grad, w.t(), None, "none", [], ""),
                            op(grad.t(), x.t(), None, "none", [], "")))
    best = [float("inf"), float("inf")]
    with torch.no_grad():
        for _ in range(WARMUP):  # oneDNN builds its primitive on the first call; caches warm on the next
            for kernel in kernels:
                kernel()
        for _ in range(repeats):
            for i, kernel in enumerate(kernels):
                start = time.perf_counter()
                kernel()
                best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def _rows_class(rows: int) -> int:
    """Rows rounded up to a power of two, at most MAX_TIMED_ROWS."""
    return min(1 << max(rows - 1, 0).bit_length(), MAX_TIMED_ROWS)


def cache_path() -> Path:
    """The per-machine file of timing decisions (ALPHALOOP_KERNEL_CACHE, else the user's cache dir)."""
    if os.environ.get("ALPHALOOP_KERNEL_CACHE"):
        return Path(os.environ["ALPHALOOP_KERNEL_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "alphaloop" / "kernels.json"


def machine_key() -> str:
    """What the decisions depend on besides the shape: the CPU model, the PyTorch build, and how
    they were timed (a decision of an older, noisier timing is made again)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return f"{model} | torch {torch.__version__} | timing {TIMING_VERSION}"


def _class_key(shape: ShapeClass) -> str:
    return f"{shape.use} rows={shape.rows} {shape.in_features}->{shape.out_features} threads={shape.threads}"


def _saved_choice(shape: ShapeClass) -> bool | None:
    try:
        saved = json.loads(cache_path().read_text())
        choice = saved.get(machine_key(), {}).get(_class_key(shape))
    except (OSError, ValueError, AttributeError):
        return None
    return choice if isinstance(choice, bool) else None


def _save_choice(shape: ShapeClass, choice: bool) -> None:
    """Add one decision to the machine's file (atomically; an unwritable cache is simply not kept)."""
    path = cache_path()
    try:
        try:
            saved = json.loads(path.read_text())
            saved = saved if isinstance(saved, dict) else {}
        except (OSError, ValueError):
            saved = {}
        mine = saved.setdefault(machine_key(), {})
        if not isinstance(mine, dict) or _class_key(shape) in mine:
            return                                   # another process decided first: keep its choice
        mine[_class_key(shape)] = choice
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(saved, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass


def use_onednn(use: Use, rows: int, out_features: int, in_features: int,
               timer: Callable[[ShapeClass], tuple[float, float]] | None = None) -> bool:
    """Whether a product of this use and shape runs on oneDNN: forced, or decided once per shape
    class and machine (the saved decision, else `timer`, default `measure`) and cached."""
    if _OP is None or _MODE == "off":
        return False
    if _MODE == "on":
        return True
    shape = ShapeClass(use, _rows_class(rows), out_features, in_features, torch.get_num_threads())
    choice = _CHOICES.get(shape)
    if choice is None:
        choice = _saved_choice(shape) if timer is None else None
        if choice is None:
            choice = prefer_onednn(*(timer or measure)(shape))
            if timer is None:
                _save_choice(shape, choice)
                choice = _saved_choice(shape) if _saved_choice(shape) is not None else choice
        _CHOICES[shape] = choice
    return choice


def forget_choices() -> None:
    """Drop every cached timing decision (the next product of each class times again)."""
    _CHOICES.clear()


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
        op = _OP
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
    """`F.linear(x, w, b)` (w: [out, in]), on oneDNN for fp32 CPU products of at least MIN_MACS
    whose shape class it won (see the module docstring)."""
    if (_OP is None or _MODE == "off" or x.dtype != torch.float32 or w.dtype != torch.float32
            or x.device.type != "cpu" or x.numel() * w.shape[0] < MIN_MACS or torch.is_autocast_enabled("cpu")
            or torch.compiler.is_compiling()):  # compiled: the compiler picks its own kernels
        return F.linear(x, w, b)
    grad = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad or (b is not None and b.requires_grad))
    if not use_onednn("train" if grad else "forward", x.numel() // x.shape[-1], w.shape[0], w.shape[1]):
        return F.linear(x, w, b)
    return _Linear.apply(x, w, b) if grad else _OP(x, w, b, "none", [], "")


class Prepared(NamedTuple):
    """A weight laid out for `product`: [in, out] for MKL (`transposed`), [out, in] for oneDNN."""

    weight: torch.Tensor
    transposed: bool


def prepare(w: torch.Tensor) -> Prepared:
    """Lay out `w` [out, in] once for repeated inference products (`product`), for the kernel that
    a decoding product of its shape class runs on."""
    onednn = (_OP is not None and w.dtype == torch.float32 and w.device.type == "cpu"
              and not (_MODE == "auto" and DECODE_ROWS * w.numel() < MIN_MACS)  # too small to time
              and use_onednn("decode", DECODE_ROWS, w.shape[0], w.shape[1]))
    return Prepared(w.contiguous(), False) if onednn else Prepared(w.t().contiguous(), True)


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
