import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from alphaloop.policies.llama import LeanLlama
from alphaloop.policies.lm import HFCausalLM, LMArch, LMPolicy, build_tiny_hf_model

ALPHABET = "0123456789+= "
SMALL = LMArch(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64,
               max_seq_len=32)


def right_padded(policy: LMPolicy, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    rows = [policy.prompt_ids(t) + [policy.eos_id] for t in texts]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), policy.pad_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def test_default_arch_size_and_determinism():
    a = LMPolicy.build(LMArch(), ALPHABET, seed=3)
    b = LMPolicy.build(LMArch(), ALPHABET, seed=3)
    c = LMPolicy.build(LMArch(), ALPHABET, seed=4)
    assert isinstance(a.model, LeanLlama)
    # 4 layers x (4*128^2 attention + 3*128*384 MLP + 2*128 norms) + 17*128 tied embedding + 128 final norm
    assert a.num_parameters == 4 * (4 * 128 * 128 + 3 * 128 * 384 + 2 * 128) + 17 * 128 + 128 == 855_296
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.model.model.embed_tokens.weight, c.model.model.embed_tokens.weight)


def test_every_arch_field_is_described_and_typos_are_rejected():
    assert all(field.description for field in LMArch.model_fields.values())
    with pytest.raises(ValueError):
        LMArch(hidden_sise=64)
    with pytest.raises(ValueError, match="num_kv_heads"):
        LMPolicy.build(LMArch(num_heads=4, num_kv_heads=3), ALPHABET, seed=0)


def test_tokens_and_special_ids():
    policy = LMPolicy.build(SMALL, ALPHABET, seed=0)
    assert (policy.pad_id, policy.bos_id, policy.eos_id) == (0, 1, 2)
    assert policy.encode("1+2=") == [5, 14, 6, 15]
    assert policy.prompt_ids("1+2=") == [1, 5, 14, 6, 15]
    assert policy.decode([1, 5, 14, 6, 15, 7, 2, 0]) == "1+2=3"


def test_sequence_logprobs_equal_log_softmax_gather():
    policy = LMPolicy.build(SMALL, ALPHABET, seed=1)
    ids, mask = right_padded(policy, ["12+3=15", "1+1=2"])
    logprobs = policy.sequence_logprobs(ids, mask)
    assert logprobs.shape == (2, ids.shape[1] - 1)
    with torch.no_grad():
        expected = torch.log_softmax(policy.model(ids), -1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    real = mask[:, 1:].bool()
    assert (logprobs - expected)[real].abs().max() < 1e-5
    # A single-row check by hand: row 1 alone gives the same numbers as inside the padded batch.
    alone = policy.sequence_logprobs(ids[1:, : int(mask[1].sum())], mask[1:, : int(mask[1].sum())])
    assert (alone[0] - logprobs[1, : alone.shape[1]]).abs().max() < 1e-5
    with pytest.raises(ValueError, match="value head"):
        policy.sequence_logprobs(ids, mask, return_values=True)
    with pytest.raises(ValueError, match="attention_mask"):
        policy.sequence_logprobs(ids, mask[:, :-1])


def test_save_load_round_trip_with_value_head_and_hf_loading(tmp_path):
    policy = LMPolicy.build(SMALL, ALPHABET, seed=2)
    head = policy.add_value_head()
    assert head.weight.abs().sum() == 0  # a critic starts at V = 0
    with torch.no_grad():
        head.weight.normal_()
        head.bias.fill_(0.5)
    policy.save(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "value_head.safetensors"} <= names

    loaded = LMPolicy.load(tmp_path)
    ids, mask = right_padded(policy, ["7+8=15", "9=9"])
    lp, values = policy.sequence_logprobs(ids, mask, return_values=True)
    lp2, values2 = loaded.sequence_logprobs(ids, mask, return_values=True)
    assert torch.equal(lp, lp2) and torch.equal(values, values2)
    assert values.shape == lp.shape

    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert tok.encode("7+8=15", add_special_tokens=False) == policy.encode("7+8=15")
    with torch.no_grad():
        assert (hf(ids).logits - policy.model(ids)).abs().max() < 1e-4


def test_tied_default_saves_one_embedding_and_hf_ties_it(tmp_path):
    from safetensors.torch import load_file

    policy = LMPolicy.build(LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2,
                                   intermediate_size=32), ALPHABET, seed=0)
    policy.save(tmp_path)
    assert "lm_head.weight" not in load_file(str(tmp_path / "model.safetensors"))
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([policy.prompt_ids("12+34=")])
    with torch.no_grad():
        assert (hf(ids).logits - policy.model(ids)).abs().max() < 1e-4


def test_load_of_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        LMPolicy.load(tmp_path / "nothing")


def test_tiny_gpt2_is_a_policy(tmp_path):
    path = build_tiny_hf_model(tmp_path / "gpt2", alphabet=ALPHABET)
    policy = LMPolicy.from_pretrained(str(path))
    assert isinstance(policy.model, HFCausalLM)
    assert policy.model.config.model_type == "gpt2"
    ids, mask = right_padded(policy, ["1+2=3", "10+20=30"])
    logprobs = policy.sequence_logprobs(ids, mask)
    with torch.no_grad():
        expected = torch.log_softmax(policy.model.hf(ids, attention_mask=mask).logits, -1)
    expected = expected[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert (logprobs - expected)[mask[:, 1:].bool()].abs().max() < 1e-5
    policy.add_value_head()
    _, values = policy.sequence_logprobs(ids, mask, return_values=True)
    assert values.shape == logprobs.shape
    policy.save(tmp_path / "saved")
    again = LMPolicy.load(tmp_path / "saved")
    assert torch.equal(again.sequence_logprobs(ids, mask), logprobs.detach())
    assert again.value_head is not None
