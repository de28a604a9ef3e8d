import pytest
import torch
from transformers import LlamaForCausalLM

from alphaloop.policies.lm import LMArch, LMPolicy, build_tiny_hf_model
from alphaloop.policies.sampler import sample

ALPHABET = "0123456789+= "
ARCH = LMArch(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64, max_seq_len=64,
              tie_embeddings=False)
TEXTS = ["1+2=", "12+34=", "7=", "100+200=", "5+5=", "99+1="]


def make_policy(seed: int = 0) -> LMPolicy:
    """Random weights 10x wider than the default init, so that greedy completions differ by
    prompt and some end in EOS (the default init repeats one token)."""
    policy = LMPolicy.build(ARCH, ALPHABET, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy.model.reset_parameters(0.2)
    return policy


def hf_greedy(hf, prompt: list[int], max_new: int, eos: int, pad: int) -> list[int]:
    out = hf.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=max_new, eos_token_id=eos,
                      pad_token_id=pad)[0, len(prompt):].tolist()
    return out[: out.index(eos) + 1] if eos in out else out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_equals_hf_generate(tmp_path, seed):
    policy = make_policy(seed)
    policy.save(tmp_path)
    hf = LlamaForCausalLM.from_pretrained(tmp_path).eval()
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    out = sample(policy, prompts, max_new_tokens=12, temperature=0)
    expected = [hf_greedy(hf, p, 12, policy.eos_id, policy.pad_id) for p in prompts]
    assert out.completion_ids == expected
    assert any(policy.eos_id in e for e in expected) and len({tuple(e) for e in expected}) > 3
    assert out.truncated == [policy.eos_id not in e for e in expected]
    # HF batched with left padding agrees too.
    width = max(map(len, prompts))
    ids = torch.tensor([[policy.pad_id] * (width - len(p)) + p for p in prompts])
    batched = hf.generate(ids, attention_mask=(ids != policy.pad_id).long(), do_sample=False,
                          max_new_tokens=12, eos_token_id=policy.eos_id,
                          pad_token_id=policy.pad_id)[:, width:].tolist()
    for ours, theirs in zip(out.completion_ids, batched):
        assert theirs[: len(ours)] == ours


def test_some_rows_stop_at_eos_and_nothing_follows():
    policy = make_policy(1)
    prompts = [policy.prompt_ids(t) for t in TEXTS] * 4
    out = sample(policy, prompts, max_new_tokens=10, temperature=1.5,
                 generator=torch.Generator().manual_seed(0))
    stopped = [ids for ids in out.completion_ids if ids and ids[-1] == policy.eos_id]
    assert stopped, "expected at least one row to emit EOS"
    for ids, logps, truncated in zip(out.completion_ids, out.logprobs, out.truncated):
        assert len(ids) == len(logps) <= 10
        assert policy.eos_id not in ids[:-1]
        assert truncated == (policy.eos_id not in ids)
        assert truncated == (len(ids) == 10 and ids[-1] != policy.eos_id)


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (1.7, 4), (0.0, 0)])
def test_logprobs_equal_a_full_forward(temperature, top_k):
    """Sampler log-probs are the raw model's (T=1, no top-k), whatever we sampled with."""
    policy = make_policy(2)
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    out = sample(policy, prompts, 9, temperature=temperature, top_k=top_k,
                 generator=torch.Generator().manual_seed(5))
    rows = [p + c for p, c in zip(prompts, out.completion_ids)]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), policy.pad_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with torch.no_grad():
        full = policy.sequence_logprobs(ids, mask)
    for i, (prompt, logps) in enumerate(zip(prompts, out.logprobs)):
        expected = full[i, len(prompt) - 1: len(prompt) - 1 + len(logps)]
        assert torch.allclose(torch.tensor(logps), expected, atol=1e-5)


def test_top_k_restricts_the_draw():
    policy = make_policy(0)
    prompts = [policy.prompt_ids("1+2=")] * 32
    out = sample(policy, prompts, 1, temperature=5.0, top_k=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        top2 = set(policy.model(torch.tensor([prompts[0]]))[0, -1].topk(2).indices.tolist())
    drawn = {ids[0] for ids in out.completion_ids}
    assert drawn <= top2 and len(drawn) == 2


def test_seeded_sampling_is_reproducible():
    policy = make_policy(0)
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    a = sample(policy, prompts, 8, generator=torch.Generator().manual_seed(7))
    b = sample(policy, prompts, 8, generator=torch.Generator().manual_seed(7))
    c = sample(policy, prompts, 8, generator=torch.Generator().manual_seed(8))
    assert a == b
    assert a.completion_ids != c.completion_ids


def test_sampler_restores_training_mode_and_keeps_no_graph():
    policy = make_policy(0)
    policy.model.train()
    out = sample(policy, [policy.prompt_ids("1=")], 3, generator=torch.Generator().manual_seed(0))
    assert policy.model.training
    assert all(isinstance(x, float) for x in out.logprobs[0])


@pytest.mark.parametrize("kwargs,name", [({"prompts": []}, "prompts"), ({"prompts": [[]]}, r"prompts\[0\]"),
                                         ({"max_new_tokens": 0}, "max_new_tokens"),
                                         ({"temperature": -1.0}, "temperature"), ({"top_k": -2}, "top_k")])
def test_bad_arguments_are_clear_errors(kwargs, name):
    policy = make_policy(0)
    args = {"prompts": [[1, 5]], "max_new_tokens": 3} | kwargs
    with pytest.raises(ValueError, match=name):
        sample(policy, **args)


def test_tiny_gpt2_policy_samples(tmp_path):
    policy = LMPolicy.from_pretrained(str(build_tiny_hf_model(tmp_path, alphabet=ALPHABET)))
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    out = sample(policy, prompts, 6, temperature=0)
    hf = policy.model.hf
    for prompt, ids in zip(prompts, out.completion_ids):
        assert ids == hf_greedy(hf, prompt, 6, policy.eos_id, policy.pad_id)
    drawn = sample(policy, prompts, 6, generator=torch.Generator().manual_seed(1))
    assert drawn == sample(policy, prompts, 6, generator=torch.Generator().manual_seed(1))
    assert all(len(ids) == len(lp) for ids, lp in zip(drawn.completion_ids, drawn.logprobs))


def test_repeated_prompts_prefill_once_and_finished_rows_leave_the_batch():
    """Four copies of each prompt: the prefill runs on the distinct prompts only, later steps on
    fewer rows as rows stop, and every row's log-probs still equal a full forward's."""
    policy = make_policy(1)
    prompts = [policy.prompt_ids(t) for t in TEXTS for _ in range(4)]
    batches = []
    hook = policy.model.register_forward_pre_hook(lambda module, args, kwargs: batches.append(
        (kwargs.get("input_ids", args[0] if args else None)).shape), with_kwargs=True)
    try:
        out = sample(policy, prompts, 10, temperature=1.5, generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert batches[0] == (len(TEXTS), max(map(len, prompts)))  # prefill: distinct prompts
    rows = [shape[0] for shape in batches[1:]]
    assert rows[-1] < len(prompts) and rows == sorted(rows, reverse=True)
    assert any(ids and ids[-1] == policy.eos_id for ids in out.completion_ids)
    sequences = [p + c for p, c in zip(prompts, out.completion_ids)]
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), policy.pad_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(sequences):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with torch.no_grad():
        full = policy.sequence_logprobs(ids, mask)
    for i, (prompt, logps) in enumerate(zip(prompts, out.logprobs)):
        assert torch.allclose(torch.tensor(logps), full[i, len(prompt) - 1: len(prompt) - 1 + len(logps)], atol=1e-5)


def test_greedy_with_repeated_prompts_equals_greedy_alone():
    policy = make_policy(0)
    prompts = [policy.prompt_ids(t) for t in TEXTS]
    alone = sample(policy, prompts, 12, temperature=0).completion_ids
    repeated = sample(policy, [p for p in prompts for _ in range(3)], 12, temperature=0).completion_ids
    assert repeated == [ids for ids in alone for _ in range(3)]
