"""oneDNN linear layers: the same values and gradients as F.linear, and a clean fallback."""

import pytest
import torch
import torch.nn.functional as F

from alphaloop.policies import matmul


@pytest.fixture
def restore():
    was = matmul.enabled()
    yield
    matmul.set_enabled(was)


@pytest.mark.parametrize("shape,bias", [((600, 128), True), ((8, 75, 128), False)])
def test_values_and_gradients_match_f_linear(shape, bias, restore):
    if not matmul.available():
        pytest.skip("this PyTorch build has no oneDNN linear")
    matmul.set_enabled(True)  # whatever this CPU would choose
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(384, 128, generator=g, requires_grad=True)
    b = torch.randn(384, generator=g, requires_grad=True) if bias else None
    assert x.numel() * w.shape[0] >= matmul.MIN_MACS  # big enough to take the oneDNN path
    upstream = torch.randn(*shape[:-1], 384, generator=g)
    grads = []
    for fn in (matmul.linear, F.linear):
        out = fn(x, w, b)
        out.backward(upstream)
        grads.append([out.detach()] + [t.grad.clone() for t in (x, w, b) if t is not None])
        for t in (x, w, b):
            if t is not None:
                t.grad = None
    for ours, theirs in zip(*grads):
        assert ours.shape == theirs.shape
        assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_small_products_other_dtypes_and_disabled_fall_back(restore):
    x, w = torch.randn(3, 16), torch.randn(8, 16)
    assert torch.equal(matmul.linear(x, w), F.linear(x, w))  # below MIN_MACS
    xd, wd = torch.randn(600, 128, dtype=torch.float64), torch.randn(384, 128, dtype=torch.float64)
    assert torch.equal(matmul.linear(xd, wd), F.linear(xd, wd))
    matmul.set_enabled(False)
    assert not matmul.enabled()
    big_x, big_w = torch.randn(600, 128), torch.randn(384, 128)
    assert torch.equal(matmul.linear(big_x, big_w), F.linear(big_x, big_w))


@pytest.mark.parametrize("on", [True, False])
def test_prepared_products_match_f_linear(on, restore):
    """The decoding pair: x W^T + b, added in place to a residual stream, for either kernel's weight layout."""
    matmul.set_enabled(on and matmul.available())
    g = torch.Generator().manual_seed(1)
    x, w, b, r = (torch.randn(64, 128, generator=g), torch.randn(384, 128, generator=g),
                  torch.randn(384, generator=g), torch.randn(64, 384, generator=g))
    prepared = matmul.prepare(w)
    assert prepared.transposed == (not matmul.enabled())
    assert torch.allclose(matmul.product(x, prepared), F.linear(x, w), atol=1e-4)
    stream = r.clone()
    out = matmul.product(x, prepared, b, residual=stream)
    assert out is stream and torch.allclose(stream, F.linear(x, w, b) + r, atol=1e-4)  # added in place
    assert torch.allclose(matmul.product(x[:2], prepared, b), F.linear(x[:2], w, b), atol=1e-4)  # below MIN_MACS
