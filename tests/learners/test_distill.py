"""Distillation losses against hand-computed and brute-force values, and the maj@K teacher's choice."""

import math

import pytest
import torch

from alphaloop.episode import Episode
from alphaloop.learners.distill import distill_loss, token_divergence
from alphaloop.stages.distill import majority_samples


def softmax(xs):
    z = [math.exp(x) for x in xs]
    return [v / sum(z) for v in z]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def test_reverse_kl_matches_a_hand_computation():
    student, teacher = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.0, 0.0]])
    # p_s = (1/4, 3/4), p_t = (1/2, 1/2): KL(p_s || p_t) = 1/4 log(1/2) + 3/4 log(3/2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    got = token_divergence(student, teacher, "reverse_kl")
    assert got.shape == (1,) and got.item() == pytest.approx(expected, rel=1e-6)
    # forward: KL(p_t || p_s) = 1/2 log(2) + 1/2 log(2/3)
    assert token_divergence(student, teacher, "forward_kl").item() == pytest.approx(
        0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0), rel=1e-6)


def test_every_divergence_matches_brute_force_and_the_loss_is_a_token_mean():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 3, 5) * 2, torch.randn(2, 3, 5) * 2
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    beta = 0.3
    brute = {name: [[0.0] * 3 for _ in range(2)] for name in ("reverse_kl", "forward_kl", "jsd")}
    for b in range(2):
        for t in range(3):
            p_s, p_t = softmax(student[b, t].tolist()), softmax(teacher[b, t].tolist())
            m = [beta * a + (1 - beta) * c for a, c in zip(p_t, p_s)]
            brute["reverse_kl"][b][t] = kl(p_s, p_t)
            brute["forward_kl"][b][t] = kl(p_t, p_s)
            brute["jsd"][b][t] = beta * kl(p_t, m) + (1 - beta) * kl(p_s, m)
    for name, values in brute.items():
        got = token_divergence(student, teacher, name, beta)
        assert torch.allclose(got, torch.tensor(values), atol=1e-5), name
        expected = (values[0][0] + values[0][1] + values[1][0]) / 3   # masked positions left out
        assert distill_loss(student, teacher, mask, name, beta).item() == pytest.approx(expected, rel=1e-5)


def test_divergences_vanish_at_the_teacher_and_jsd_tends_to_the_kls():
    torch.manual_seed(1)
    student, teacher = torch.randn(4, 7), torch.randn(4, 7)
    for name in ("reverse_kl", "forward_kl", "jsd"):
        assert token_divergence(teacher, teacher, name).abs().max().item() < 1e-6
        assert (token_divergence(student, teacher, name) > 0).all()
    # JSD(beta) ~ beta * KL(t || s) as beta -> 0 and ~ (1 - beta) * KL(s || t) as beta -> 1 (GKD's limits)
    small = token_divergence(student, teacher, "jsd", 1e-4) / 1e-4
    large = token_divergence(student, teacher, "jsd", 1 - 1e-4) / 1e-4
    assert torch.allclose(small, token_divergence(student, teacher, "forward_kl"), rtol=1e-2)
    assert torch.allclose(large, token_divergence(student, teacher, "reverse_kl"), rtol=1e-2)


def test_the_divergence_checks_its_inputs():
    with pytest.raises(ValueError, match="teacher_logits"):
        token_divergence(torch.zeros(2, 5), torch.zeros(2, 6), "reverse_kl")
    with pytest.raises(ValueError, match="beta"):
        token_divergence(torch.zeros(2, 5), torch.zeros(2, 5), "jsd", 1.0)
    with pytest.raises(ValueError, match="divergence"):
        token_divergence(torch.zeros(2, 5), torch.zeros(2, 5), "tv")


def answered(answer, tag, success=False):
    return Episode(observations=["q"], actions=[tag], success=success, info={"answer": answer, "tag": tag})


def test_maj_teacher_keeps_only_a_sample_with_the_majority_answer():
    groups = [
        [answered("5", "a"), answered("7", "b", True), answered("7", "c", True), answered(None, "d")],
        [answered(None, "e"), answered(None, "f")],                        # no answer at all: skipped
        [answered("3", "g"), answered("4", "h"), answered("4", "i"), answered("3", "j"), answered("4", "k")],
        [answered("1", "l", True), answered("2", "m")],                    # a tie: the answer seen first
    ]
    kept = majority_samples(groups)
    assert [e and e.info["tag"] for e in kept] == ["b", None, "h", "l"]
    assert all(e is None or e.info["answer"] == a for e, a in zip(kept, ["7", None, "4", "1"]))
