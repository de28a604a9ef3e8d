"""DPO and IPO losses against hand-computed values."""

import math

import pytest
import torch

from alphaloop.learners.dpo import dpo_loss


def test_dpo_and_ipo_match_their_formulas():
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.0])
    ref_c, ref_r = torch.tensor([-1.5, -2.0]), torch.tensor([-2.0, -2.0])
    h = [(-1.0 + 1.5) - (-3.0 + 2.0), (-2.0 + 2.0) - (-1.0 + 2.0)]          # [1.5, -1.0]
    beta = 0.5
    loss, stats = dpo_loss(chosen, rejected, ref_c, ref_r, beta)
    expected = -sum(math.log(1 / (1 + math.exp(-beta * x))) for x in h) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["accuracy"] == 0.5 and stats["margin"] == pytest.approx(beta * sum(h) / 2)
    assert stats["reward_chosen"] == pytest.approx(beta * (0.5 + 0.0) / 2)
    ipo, _ = dpo_loss(chosen, rejected, ref_c, ref_r, beta, "ipo")
    assert ipo.item() == pytest.approx(sum((x - 1 / (2 * beta)) ** 2 for x in h) / 2, rel=1e-6)


def test_dpo_is_log2_at_the_reference_and_checks_its_inputs():
    zeros = torch.zeros(3)
    loss, stats = dpo_loss(zeros, zeros, zeros, zeros, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2)) and stats["margin"] == 0.0
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(zeros, zeros, zeros, zeros, beta=0.0)
    with pytest.raises(ValueError, match="loss"):
        dpo_loss(zeros, zeros, zeros, zeros, beta=0.1, loss="hinge")
