import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from alphaloop.policies.llama import LeanLlama


def config(tie: bool = True, kv_heads: int = 4, **extra) -> LlamaConfig:
    return LlamaConfig(vocab_size=23, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=64,
                       tie_word_embeddings=tie, initializer_range=0.2, **extra)


def pair(cfg: LlamaConfig, seed: int = 0) -> tuple[LeanLlama, LlamaForCausalLM]:
    torch.manual_seed(seed)
    ours = LeanLlama(cfg).eval()
    hf = LlamaForCausalLM(cfg).eval()
    hf.load_state_dict(ours.state_dict())
    return ours, hf


@pytest.mark.parametrize("tie,kv_heads,bias", [(True, 4, False), (False, 2, False), (False, 1, True)])
def test_logits_match_hf_llama(tie, kv_heads, bias):
    ours, hf = pair(config(tie, kv_heads, attention_bias=bias, mlp_bias=bias))
    assert set(ours.state_dict()) == set(hf.state_dict())
    ids = torch.randint(0, 23, (3, 11), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (ours(ids) - hf(ids).logits).abs().max() < 1e-4


def test_right_padding_mask_matches_hf_on_real_tokens():
    ours, hf = pair(config())
    ids = torch.randint(0, 23, (3, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    with torch.no_grad():
        diff = (ours(ids, attention_mask=mask) - hf(ids, attention_mask=mask).logits).abs()
    assert diff[mask.bool()].max() < 1e-4


def test_left_padding_mask_matches_unpadded_rows():
    ours, _ = pair(config(False, 2))
    ids = torch.randint(0, 23, (2, 8), generator=torch.Generator().manual_seed(3))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, :3] = 0  # row 1 is a left-padded 5-token sequence
    with torch.no_grad():
        padded = ours(ids, attention_mask=mask)
        alone = ours(ids[1:, 3:])
    assert torch.isfinite(padded).all()  # padding queries never see an all-masked row
    assert (padded[1, 3:] - alone[0]).abs().max() < 1e-5


@pytest.mark.parametrize("kv_heads,bias", [(2, False), (1, True), (4, True)])
def test_kv_cache_decoding_equals_full_forward(kv_heads, bias):
    """Prefill + one-token steps (kv_cache.py: folded norms, pair-ordered RoPE, grouped-query
    windows) give the full forward's logits, with and without projection biases."""
    ours, _ = pair(config(False, kv_heads, attention_bias=bias, mlp_bias=bias))
    with torch.no_grad():  # the init zeroes biases and sets unit norms: make both matter
        for name, param in ours.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.add_(0.3 * torch.randn(param.shape, generator=torch.Generator().manual_seed(len(name))))
    ids = torch.randint(0, 23, (3, 10), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, :4] = 0  # left padding in the prompt part
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.inference_mode():
        full = ours(ids, position_ids=positions, attention_mask=mask)
        cache = ours.new_cache(3, 12)
        steps = [ours(ids[:, :6], position_ids=positions[:, :6], attention_mask=mask[:, :6], kv_cache=cache)]
        for t in range(6, 10):
            steps.append(ours(ids[:, t:t + 1], position_ids=positions[:, t:t + 1], kv_cache=cache))
    incremental = torch.cat(steps, dim=1)
    assert cache.length == 10
    assert (incremental - full).abs()[mask.bool()].max() < 1e-5


@pytest.mark.parametrize("kv_heads", [4, 2])
def test_cached_prefill_keeping_the_last_logits_equals_full_forward(kv_heads):
    """logits_to_keep=1 skips the last layer's attention and MLP at every other position; the
    kept logits, and every later decoding step (which reads all cached keys), are unchanged."""
    ours, _ = pair(config(False, kv_heads))
    ids = torch.randint(0, 23, (3, 9), generator=torch.Generator().manual_seed(5))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, :2] = 0
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.inference_mode():
        full = ours(ids, position_ids=positions, attention_mask=mask)
        cache = ours.new_cache(3, 12)
        last = ours(ids[:, :7], position_ids=positions[:, :7], attention_mask=mask[:, :7], kv_cache=cache,
                    logits_to_keep=1)
        steps = [ours(ids[:, t:t + 1], position_ids=positions[:, t:t + 1], kv_cache=cache) for t in (7, 8)]
        assert ours(ids, position_ids=positions, attention_mask=mask, logits_to_keep=2).shape == (3, 2, 23)
    assert last.shape == (3, 1, 23)
    assert (last[:, 0] - full[:, 6]).abs().max() < 1e-5
    assert (torch.cat(steps, dim=1) - full[:, 7:]).abs().max() < 1e-5


def test_cache_overflow_and_bad_shapes_are_clear_errors():
    ours, _ = pair(config())
    cache = ours.new_cache(1, 4)
    with pytest.raises(ValueError, match="kv_cache"):
        ours(torch.zeros(1, 5, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="input_ids"):
        ours(torch.zeros(5, dtype=torch.long))


def test_gradients_match_hf():
    ours, hf = pair(config(False, 2))
    ids = torch.randint(0, 23, (2, 7), generator=torch.Generator().manual_seed(5))
    ours(ids).logsumexp(-1).sum().backward()
    hf(ids).logits.logsumexp(-1).sum().backward()
    theirs = dict(hf.named_parameters())
    for name, param in ours.named_parameters():
        assert (param.grad - theirs[name].grad).abs().max() < 1e-4, name
