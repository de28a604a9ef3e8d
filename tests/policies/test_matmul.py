
"""oneDNN linear layers: the same values and gradients as F.linear, a clean fallback, and the
choice between the two kernels made by timing (once per shape class, cached, overridable)."""

import json
import time

import pytest
import torch
import torch.nn.functional as F

from alphaloop.policies import matmul


@pytest.fixture
def restore():
    was, chosen = matmul.mode(), matmul.choices()
    yield
    matmul.set_enabled({"auto": None, "on": True, "off": False}[was])
    matmul.forget_choices()
    matmul._CHOICES.update(chosen)


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


def test_choice_by_timing_is_made_once_per_shape_class_and_cached(restore, monkeypatch):
    """Injected timings: oneDNN wins only by more than MARGIN, each class is timed once, and the
    thread count and the rows' power of two are part of the class."""
    monkeypatch.setattr(matmul, "_OP", matmul._OP or (lambda *args: None))  # a stand-in where the build lacks it
    matmul.set_enabled(None)
    matmul.forget_choices()
    timed = []

    def timer(shape):
        timed.append(shape)
        return {128: (1.0, 0.5), 512: (1.0, 0.9)}.get(shape.out_features, (1.0, 2.0))  # (MKL s, oneDNN s)

    assert matmul.use_onednn("decode", 64, 128, 64, timer)          # 2x faster: oneDNN
    assert not matmul.use_onednn("forward", 64, 512, 64, timer)     # 1.1x: within the margin, MKL
    assert not matmul.use_onednn("train", 64, 384, 64, timer)       # slower: MKL
    assert len(timed) == 3
    assert matmul.use_onednn("decode", 64, 128, 64, timer)          # cached: not timed again
    assert matmul.use_onednn("decode", 33, 128, 64, timer)          # 33 rows -> the 64-row class
    assert len(timed) == 3
    matmul.use_onednn("decode", 65, 128, 64, timer)                 # 65 rows -> 128: a new class
    assert timed[-1].rows == 128 and len(timed) == 4
    matmul.use_onednn("decode", 10**6, 128, 64, timer)              # capped at MAX_TIMED_ROWS
    assert timed[-1].rows == matmul.MAX_TIMED_ROWS
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        matmul.use_onednn("decode", 64, 128, 64, timer)
        assert timed[-1].threads == threads + 1 and len(timed) == 6
    finally:
        torch.set_num_threads(threads)
    assert matmul.choices()[matmul.ShapeClass("decode", 64, 128, 64, threads)] is True
    assert matmul.enabled() and "oneDNN" in matmul.describe()


def test_forced_modes_skip_timing(restore, monkeypatch):
    monkeypatch.setattr(matmul, "_OP", matmul._OP or (lambda *args: None))

    def timer(shape):
        raise AssertionError("a forced choice must not time anything")

    matmul.set_enabled(True)
    assert matmul.mode() == "on" and matmul.use_onednn("train", 4096, 384, 128, timer)
    matmul.set_enabled(False)
    assert matmul.mode() == "off" and not matmul.use_onednn("train", 4096, 384, 128, timer)
    assert not matmul.enabled()


@pytest.mark.parametrize("value,mode", [("1", "on"), ("0", "off"), ("", "auto"), (None, "auto"), ("yes", "auto")])
def test_environment_override(value, mode):
    assert matmul.mode_from_env(value) == mode


def test_margin_and_real_measurement(restore):
    assert matmul.prefer_onednn(1.0, 0.5) and not matmul.prefer_onednn(1.0, 0.9) and not matmul.prefer_onednn(1.0, 1.0)
    if not matmul.available():
        pytest.skip("this PyTorch build has no oneDNN linear")
    start = time.perf_counter()
    for use in ("decode", "forward", "train"):
        mkl, onednn = matmul.measure(matmul.ShapeClass(use, 64, 384, 128, torch.get_num_threads()))
        assert 0 < mkl < 1 and 0 < onednn < 1
    assert time.perf_counter() - start < 5  # generous: the budget is milliseconds; this only catches a runaway


def test_timing_leaves_the_global_rng_alone(restore):
    if not matmul.available():
        pytest.skip("this PyTorch build has no oneDNN linear")
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    matmul.measure(matmul.ShapeClass("train", 64, 384, 128, 1))
    assert torch.equal(torch.rand(4), expected)


def test_auto_mode_matches_f_linear_whatever_it_picks(restore):
    """Whatever the timing picks on this machine, values and gradients are F.linear's to fp32 rounding."""
    matmul.set_enabled(None)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(600, 128, generator=g, requires_grad=True)
    w = torch.randn(384, 128, generator=g, requires_grad=True)
    out = matmul.linear(x, w)
    out.sum().backward()
    ours = (out.detach(), x.grad.clone(), w.grad.clone())
    x.grad = w.grad = None
    ref = F.linear(x, w)
    ref.sum().backward()
    for a, b in zip(ours, (ref.detach(), x.grad, w.grad)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    prepared = matmul.prepare(w.detach())
    assert torch.allclose(matmul.product(x.detach()[:64], prepared), F.linear(x.detach()[:64], w.detach()), atol=1e-4)


def test_timing_decisions_are_kept_per_machine_and_reused(tmp_path, monkeypatch, restore):
    """A decision is timed once per machine: written to the kernel file and read back by any later
    process (here: after the in-process cache is dropped, timing would fail if it were asked)."""
    monkeypatch.setenv("ALPHALOOP_KERNEL_CACHE", str(tmp_path / "kernels.json"))
    monkeypatch.setattr(matmul, "_OP", matmul._OP or (lambda *a: None))
    matmul.set_enabled(None)
    monkeypatch.setattr(matmul, "measure", lambda shape: (1.0, 0.1))       # oneDNN 10x faster
    matmul.forget_choices()
    assert matmul.use_onednn("forward", 100, 384, 128) is True
    saved = json.loads((tmp_path / "kernels.json").read_text())
    assert list(saved) == [matmul.machine_key()] and len(saved[matmul.machine_key()]) == 1

    def no_timing(shape):
        raise AssertionError("timed again although this machine already decided")

    monkeypatch.setattr(matmul, "measure", no_timing)
    matmul.forget_choices()                                                 # a new process
    assert matmul.use_onednn("forward", 120, 384, 128) is True              # same class: 128 rows
    matmul.forget_choices()


def test_decisions_of_an_older_timing_are_made_again(tmp_path, monkeypatch, restore):
    """A decision saved under an older timing version (one warm-up, best of 3: noisy enough to have
    kept MKL for products oneDNN runs in 0.6x the time) is not reused; the class is timed again."""
    path = tmp_path / "kernels.json"
    monkeypatch.setenv("ALPHALOOP_KERNEL_CACHE", str(path))
    monkeypatch.setattr(matmul, "_OP", matmul._OP or (lambda *a: None))
    matmul.set_enabled(None)
    current = matmul.machine_key()
    assert current.endswith(f"| timing {matmul.TIMING_VERSION}")
    old = current.rsplit(" | timing ", 1)[0]                                 # the key before versions
    path.write_text(json.dumps({old: {"decode rows=64 128->384 threads=1": False}}))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(matmul, "measure", lambda shape: (1.0, 0.5))        # oneDNN 2x faster
    matmul.forget_choices()
    assert matmul.use_onednn("decode", 64, 384, 128) is True
    saved = json.loads(path.read_text())
    assert saved[old] == {"decode rows=64 128->384 threads=1": False}       # left as it was
    assert saved[current] == {"decode rows=64 128->384 threads=1": True}


def test_timing_warms_up_before_it_measures(restore, monkeypatch):
    """Each kernel runs WARMUP untimed calls and REPEATS timed ones: oneDNN's first calls after it
    builds a primitive are slow, and one warm-up left them ~30% slow on an AMD EPYC."""
    if not matmul.available():
        pytest.skip("this PyTorch build has no oneDNN linear")
    calls = {"mkl": 0, "onednn": 0}
    real_op, real_mm = matmul._OP, torch.mm

    def counting_op(*args):
        calls["onednn"] += 1
        return real_op(*args)

    def counting_mm(*args):
        calls["mkl"] += 1
        return real_mm(*args)

    monkeypatch.setattr(matmul, "_OP", counting_op)
    monkeypatch.setattr(torch, "mm", counting_mm)
    matmul.measure(matmul.ShapeClass("decode", 64, 384, 128, 1))
    assert calls == {"mkl": matmul.WARMUP + matmul.REPEATS, "onednn": matmul.WARMUP + matmul.REPEATS}
    assert matmul.WARMUP >= 3 and matmul.REPEATS >= 10
