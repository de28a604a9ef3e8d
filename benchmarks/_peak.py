"""Measured fp32 matmul peak of this machine: the denominator of model FLOPs utilisation (MFU)."""

from __future__ import annotations

import time

import torch

from alphaloop.policies import matmul


def matmul_peak_flops(sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5) -> float:
    """Best FLOP/s of a square fp32 product (2 n^3 FLOPs) over sizes and repeats, at the current
    `torch.get_num_threads()`, through both kernels the model may use, whichever this CPU was
    given: MKL (`torch.mm`) and oneDNN (`alphaloop.policies.matmul`, about twice MKL on AMD
    CPUs) when this build has it. Best-of, not mean: the peak is what the hardware can do when
    nothing else interferes, with the faster library."""
    best = 0.0
    products = [torch.mm]
    if matmul.available():
        onednn = torch.ops.mkldnn._linear_pointwise
        products.append(lambda a, b: onednn(a, b.t(), None, "none", [], ""))  # a @ b as x W^T with W = b^T
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for product in products:
            product(a, b)  # warm-up
            for _ in range(repeats):
                start = time.perf_counter()
                product(a, b)
                best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


if __name__ == "__main__":
    print(f"fp32 matmul peak: {matmul_peak_flops() / 1e9:.1f} GFLOP/s at {torch.get_num_threads()} threads "
          f"(best of MKL{' and oneDNN' if matmul.available() else ''})")
