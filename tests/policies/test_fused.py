"""The hand-written RMSNorm and SwiGLU backward passes equal PyTorch's autograd of the plain ops."""

import pytest
import torch
import torch.nn.functional as F

from alphaloop.policies.fused import _RMSNorm, _SwiGLU, rms_norm, swiglu


def test_gradients_pass_gradcheck_in_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.rand(8, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _RMSNorm.apply(x, w, 1e-6), (x, w))
    u = torch.randn(4, 2, 12, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda u: _SwiGLU.apply(u, 6), (u,))


@pytest.mark.parametrize("shape", [(7, 16), (2, 33, 16)])
def test_float32_training_path_equals_the_plain_ops(shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = (torch.rand(shape[-1], generator=g) + 0.5).requires_grad_()
    out_grad = torch.randn(*shape, generator=g)
    rms_norm(x, w, 1e-5).backward(out_grad)
    ours = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    F.rms_norm(x, (shape[-1],), w, 1e-5).backward(out_grad)
    assert torch.allclose(ours[0], x.grad, atol=1e-5) and torch.allclose(ours[1], w.grad, atol=1e-5)

    u = torch.randn(*shape[:-1], 2 * shape[-1], generator=g, requires_grad=True)
    swiglu(u, shape[-1]).backward(out_grad)
    ours_u = u.grad.clone()
    u.grad = None
    gate, up = u.split(shape[-1], dim=-1)
    (F.silu(gate) * up).backward(out_grad)
    assert torch.allclose(ours_u, u.grad, atol=1e-6)


def test_inference_takes_the_plain_ops():
    x, w = torch.randn(4, 8), torch.ones(8)
    with torch.no_grad():
        assert torch.equal(rms_norm(x, w, 1e-6), F.rms_norm(x, (8,), w, 1e-6))
        u = torch.randn(4, 16)
        assert torch.equal(swiglu(u, 8), F.silu(u[:, :8]) * u[:, 8:])
