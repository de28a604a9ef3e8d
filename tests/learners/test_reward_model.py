"""Bradley-Terry loss against hand-computed values."""

import math

import pytest
import torch

from alphaloop.learners.reward_model import bradley_terry_loss


def test_bradley_terry_matches_the_formula():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.5, -1.0])
    loss, stats = bradley_terry_loss(chosen, rejected)
    expected = -(math.log(1 / (1 + math.exp(-1.0))) + math.log(1 / (1 + math.exp(0.5))) + math.log(0.5)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["accuracy"] == pytest.approx(1 / 3) and stats["gap"] == pytest.approx(0.5 / 3)
    margin_loss, _ = bradley_terry_loss(chosen, rejected, margin=1.0)
    expected_margin = -(math.log(0.5) + math.log(1 / (1 + math.exp(1.5))) + math.log(1 / (1 + math.exp(1.0)))) / 3
    assert margin_loss.item() == pytest.approx(expected_margin, rel=1e-6)


def test_bradley_terry_gradient_pushes_chosen_up():
    chosen = torch.zeros(4, requires_grad=True)
    rejected = torch.zeros(4, requires_grad=True)
    loss, _ = bradley_terry_loss(chosen, rejected)
    loss.backward()
    assert torch.allclose(chosen.grad, torch.full((4,), -0.125))       # d/dr_c of -log sigmoid(0) / 4
    assert torch.allclose(rejected.grad, torch.full((4,), 0.125))
    with pytest.raises(ValueError, match="chosen and rejected"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(2))
