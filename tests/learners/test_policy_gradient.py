"""Policy-gradient losses against values and gradients worked out by hand."""

import math

import pytest
import torch

from alphaloop.learners.policy_gradient import (
    aggregate,
    clipped_policy_loss,
    clipped_value_loss,
    entropy_from_logits,
    kl_k3,
    policy_gradient_loss,
)

F64 = torch.float64


def t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def close(actual: torch.Tensor, expected) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), rtol=0, atol=1e-9)


# ---------------------------------------------------------------- k3 KL


def test_k3_values():
    # x = log(ref/pi):  pi = .5, ref = .25 -> x = -ln 2, k3 = 1/2 + ln 2 - 1
    #                   pi = .5, ref = 1   -> x = +ln 2, k3 = 2 - ln 2 - 1
    k3 = kl_k3(t([math.log(0.5), math.log(0.5)]), t([math.log(0.25), 0.0]))
    close(k3, [0.5 + math.log(2) - 1, 1 - math.log(2)])
    close(k3, [0.1931471805599453, 0.3068528194400547])


def test_k3_zero_when_equal_and_never_negative():
    logp = torch.randn(64, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(kl_k3(logp, logp.clone()), torch.zeros_like(logp))
    for scale in (1e-9, 1e-4, 1.0, 10.0):
        ref = logp + scale * torch.randn(64, 32, generator=torch.Generator().manual_seed(2))
        assert (kl_k3(logp, ref) >= 0).all()
    with pytest.raises(ValueError, match="ref_logprobs"):
        kl_k3(logp, logp[:, :3])


def test_k3_is_unbiased_for_kl_pi_ref_under_samples_from_pi():
    pi = t([0.6, 0.3, 0.1])
    ref = t([0.2, 0.5, 0.3])
    exact = (pi * (pi / ref).log()).sum()  # KL(pi || ref) = 0.3600...
    samples = torch.multinomial(pi, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    estimate = kl_k3(pi.log()[samples], ref.log()[samples]).mean()
    assert estimate.item() == pytest.approx(exact.item(), abs=0.005)


# ---------------------------------------------------------------- aggregation


def test_aggregation_modes_differ_on_sequences_of_different_length():
    # row 0 has 4 tokens (1, 2, 3, 4), row 1 a single token (10); 99 sits on padding and must be ignored
    per_token = t([[1.0, 2.0, 3.0, 4.0], [10.0, 99.0, 99.0, 99.0]])
    mask = t([[1, 1, 1, 1], [1, 0, 0, 0]])
    close(aggregate(per_token, mask, "token-mean"), 20 / 5)  # 4.0
    close(aggregate(per_token, mask, "sequence-mean"), (10 / 4 + 10 / 1) / 2)  # 6.25
    close(aggregate(per_token, mask, "constant", max_tokens=8), 20 / (2 * 8))  # 1.25
    # a row with no tokens adds nothing, but counts in N for sequence-mean
    per_token3 = torch.cat([per_token, t([[5.0, 5.0, 5.0, 5.0]])])
    mask3 = torch.cat([mask, t([[0, 0, 0, 0]])])
    close(aggregate(per_token3, mask3, "token-mean"), 4.0)
    close(aggregate(per_token3, mask3, "sequence-mean"), 12.5 / 3)


def test_aggregation_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="unknown aggregation 'mean'.*token-mean"):
        aggregate(x, x, "mean")
    with pytest.raises(ValueError, match="max_tokens"):
        aggregate(x, x, "constant")
    with pytest.raises(ValueError, match="per_token"):
        aggregate(torch.zeros(2, 4), x, "token-mean")


# ---------------------------------------------------------------- clipped surrogate

# row 0 has advantage +1, row 1 advantage -1; ratios chosen on both sides of the clip range
RATIOS = [[1.5, 0.5, 1.25], [1.5, 0.5, 0.9]]
ADV = t([1.0, -1.0])


def _clip_case(clip_low: float, clip_high: float, advantages: torch.Tensor = ADV):
    old = t([[-1.0, -2.0, -0.5], [-1.5, -0.7, -3.0]])
    logp = (old + t(RATIOS).log()).requires_grad_(True)
    loss, stats = clipped_policy_loss(logp, old, advantages, torch.ones(2, 3, dtype=F64),
                                      clip_low=clip_low, clip_high=clip_high)
    loss.backward()
    return loss, stats, logp.grad


def test_clip_higher_values_and_gradients():
    loss, stats, grad = _clip_case(clip_low=0.2, clip_high=0.28)
    # per token -min(rho A, clip(rho, .8, 1.28) A):
    #   A=+1: rho 1.5 -> clipped to 1.28 (-1.28, no grad); rho .5 -> -.5 (not clipped: the clip only
    #         bounds moves in the direction A favours); rho 1.25 -> -1.25 (inside 1 + .28)
    #   A=-1: rho 1.5 -> 1.5 (not clipped); rho .5 -> clipped to .8 (.8, no grad); rho .9 -> .9
    per_token = [-1.28, -0.5, -1.25, 1.5, 0.8, 0.9]
    close(loss, sum(per_token) / 6)
    # d l / d log pi = -A rho where not clipped, 0 where clipped; token-mean divides by 6
    close(grad, t([[0.0, -0.5, -1.25], [1.5, 0.0, 0.9]]) / 6)
    assert stats["clip_fraction"] == pytest.approx(2 / 6)
    assert stats["clip_high_fraction"] == pytest.approx(1 / 6)
    assert stats["clip_low_fraction"] == pytest.approx(1 / 6)
    assert stats["ratio_mean"] == pytest.approx((1.5 + 0.5 + 1.25 + 1.5 + 0.5 + 0.9) / 6)
    # approx_kl = mean k3 of KL(old || new) = mean(rho - ln rho - 1)
    rhos = [r for row in RATIOS for r in row]
    assert stats["approx_kl"] == pytest.approx(sum(r - math.log(r) - 1 for r in rhos) / 6)


def test_symmetric_clip_also_clips_the_1_25_ratio():
    loss, stats, grad = _clip_case(clip_low=0.2, clip_high=0.2)
    close(loss, (-1.2 - 0.5 - 1.2 + 1.5 + 0.8 + 0.9) / 6)
    close(grad, t([[0.0, -0.5, 0.0], [1.5, 0.0, 0.9]]) / 6)
    assert stats["clip_fraction"] == pytest.approx(3 / 6)


def test_per_token_advantages_equal_broadcast_per_sequence_advantages():
    seq = _clip_case(0.2, 0.28)
    tok = _clip_case(0.2, 0.28, advantages=ADV[:, None].expand(2, 3).clone())
    close(tok[0], seq[0].item())
    close(tok[2], seq[2])
    with pytest.raises(ValueError, match="advantages"):
        _clip_case(0.2, 0.28, advantages=t([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("aggregation", ["token-mean", "sequence-mean", "constant"])
def test_on_policy_gradient_is_reinforce(aggregation):
    """With pi_old = pi the clipped surrogate's gradient is the REINFORCE gradient -A grad log pi."""
    gen = torch.Generator().manual_seed(0)
    n, steps, vocab = 4, 5, 7
    logits = torch.randn(n, steps, vocab, generator=gen, dtype=F64, requires_grad=True)
    tokens = torch.randint(vocab, (n, steps), generator=gen)
    mask = t([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 1, 1, 1, 0], [1, 0, 0, 0, 0]])
    adv = t([0.7, -1.3, 0.2, 2.0])

    def logprobs():
        return torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)

    logp = logprobs()
    loss, stats = clipped_policy_loss(logp, logp.detach(), adv, mask, aggregation=aggregation, max_tokens=5)
    (grad,) = torch.autograd.grad(loss, logits)
    reinforce = aggregate(-adv[:, None] * logprobs(), mask, aggregation, max_tokens=5)
    (expected,) = torch.autograd.grad(reinforce, logits)
    torch.testing.assert_close(grad, expected)
    assert stats["clip_fraction"] == 0.0 and stats["approx_kl"] == 0.0 and stats["ratio_mean"] == 1.0
    # old_logprobs=None is the same on-policy shorthand
    loss_none, _ = clipped_policy_loss(logprobs(), None, adv, mask, aggregation=aggregation, max_tokens=5)
    close(loss_none, loss.item())


def test_clip_range_is_validated():
    with pytest.raises(ValueError, match="clip_low"):
        _clip_case(clip_low=-0.1, clip_high=0.2)


# ---------------------------------------------------------------- full objective


def test_policy_gradient_loss_adds_beta_k3():
    old = t([[-1.0, -2.0, -0.5], [-1.5, -0.7, -3.0]])
    logp = old + t(RATIOS).log()
    ref = old - 0.3
    mask = t([[1, 1, 1], [1, 1, 0]])
    pg, _ = clipped_policy_loss(logp, old, ADV, mask, clip_high=0.28)
    loss0, stats0 = policy_gradient_loss(logp, old, ADV, mask, clip_high=0.28)  # beta 0: no reference needed
    close(loss0, pg.item())
    assert "kl" not in stats0
    loss, stats = policy_gradient_loss(logp, old, ADV, mask, ref_logprobs=ref, beta=0.1, clip_high=0.28)
    kl_mean = ((kl_k3(logp, ref) * mask).sum() / mask.sum()).item()
    close(loss, pg.item() + 0.1 * kl_mean)  # token-mean is linear, so the KL term adds as its own mean
    assert stats["kl"] == pytest.approx(kl_mean) and kl_mean > 0
    with pytest.raises(ValueError, match="ref_logprobs"):
        policy_gradient_loss(logp, old, ADV, mask, beta=0.1)


# ---------------------------------------------------------------- value loss


def test_clipped_value_loss():
    values = t([[1.0, 0.6, 1.5, 0.0]]).requires_grad_(True)
    old = t([[0.5, 0.5, 0.5, 0.5]])
    returns = t([[1.0, 1.0, 1.0, 2.0]])
    mask = t([[1, 1, 1, 0]])  # last token is padding
    loss = clipped_value_loss(values, old, returns, mask, clip=0.2)
    # t0: V moved .5 towards R, beyond the clip: max(0, (.7 - 1)^2) = .09, and no gradient (clipped)
    # t1: inside the clip range: .4^2 = .16, gradient V - R = -.4
    # t2: V overshot away from V_old: max(.5^2, (.7 - 1)^2) = .25, unclipped term wins, gradient .5
    close(loss, 0.5 * (0.09 + 0.16 + 0.25) / 3)
    loss.backward()
    close(values.grad, t([[0.0, -0.4, 0.5, 0.0]]) / 3)
    with pytest.raises(ValueError, match="returns"):
        clipped_value_loss(values, old, returns[:, :2], mask)


# ---------------------------------------------------------------- entropy


def test_entropy_from_logits():
    inf = float("inf")
    logits = t([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -inf, -inf]],      # uniform over 4, then over 2
                [[1000.0, 0.0, 0.0, 0.0], [5.0, 5.0, 5.0, 5.0]]])     # near-deterministic; padding
    mask = t([[1, 1], [1, 0]])
    logits.requires_grad_(True)
    h = entropy_from_logits(logits, mask)
    close(h, (math.log(4) + math.log(2) + 0.0) / 3)
    h.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="logits"):
        entropy_from_logits(logits[0], mask)


# ---------------------------------------------------------------- layouts


@pytest.mark.parametrize("aggregation", ["token-mean", "sequence-mean", "constant"])
def test_loss_and_gradient_do_not_depend_on_the_batch_layout(aggregation):
    """The learner's [N, Tc] completion-only layout (each prompt computed once) gives the loss and
    gradients of the plain [N, T-1] prompt + completion layout, on a minibatch of the rows."""
    from alphaloop.batch import pack, pack_completions
    from alphaloop.policies.lm import LMArch, LMPolicy

    policy = LMPolicy.build(LMArch(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64,
                                   tie_embeddings=False), "0123456789+= ", seed=0)
    g = torch.Generator().manual_seed(0)
    prompts, completions = [], []
    for n in (2, 6, 4):
        prompt = [1] + torch.randint(4, 17, (n,), generator=g).tolist()
        for _ in range(4):
            prompts.append(prompt)
            completions.append(torch.randint(2, 17, (int(torch.randint(1, 6, (1,), generator=g)),),
                                             generator=g).tolist())
    advantages = torch.randn(len(prompts), generator=g)
    # log pi_old = log pi - delta: ratios exp(delta) around 1 +- 0.2, so clipping is live.
    deltas = [(torch.randn(len(c), generator=g) * 0.2).tolist() for c in completions]
    rows = torch.tensor([7, 0, 3, 10, 11])

    def run(layout: str) -> tuple[torch.Tensor, dict]:
        policy.zero_grad()
        if layout == "plain":
            ids, attention, mask = pack(prompts, completions, policy.pad_id)
            delta = torch.zeros(mask.shape)
            for i, (p, d) in enumerate(zip(prompts, deltas)):
                delta[i, len(p) - 1: len(p) - 1 + len(d)] = torch.tensor(d)
            logprobs = policy.sequence_logprobs(ids[rows], attention[rows])
            mask, delta = mask[rows], delta[rows]
        else:
            batch = pack_completions(prompts, completions, policy.pad_id)
            delta = torch.zeros(batch.mask.shape)
            for i, d in enumerate(deltas):
                delta[i, : len(d)] = torch.tensor(d)
            logprobs = policy.completion_logprobs(batch.rows(rows))[0]
            width = logprobs.shape[1]
            mask, delta = batch.mask[rows, :width], delta[rows, :width]
        loss, _ = clipped_policy_loss(logprobs, logprobs.detach() - delta, advantages[rows], mask,
                                      aggregation=aggregation, max_tokens=8)
        loss.backward()
        return loss.detach(), {name: p.grad.clone() for name, p in policy.named_parameters()}

    plain_loss, plain_grads = run("plain")
    shared_loss, shared_grads = run("completions")
    assert abs(plain_loss - shared_loss) < 1e-5 and plain_loss.abs() > 1e-3
    for name, grad in plain_grads.items():
        assert (shared_grads[name] - grad).abs().max() <= 1e-4 * grad.abs().max().clamp_min(1e-3), name
