"""The training forward with each prompt computed once equals the plain forward, values and gradients."""

import pytest
import torch

from alphaloop.batch import pack, pack_completions
from alphaloop.policies.lm import LMArch, LMPolicy, build_tiny_hf_model

ALPHABET = "0123456789+= "


def make_policy(tie: bool, kv_heads: int, seed: int = 0) -> LMPolicy:
    arch = LMArch(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=kv_heads, intermediate_size=64,
                  max_seq_len=64, tie_embeddings=tie)
    policy = LMPolicy.build(arch, ALPHABET, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy.model.reset_parameters(0.2)  # wide weights: outputs vary by position and prompt
    return policy


def groups(seed: int = 1, lengths=(3, 7, 1, 5), group: int = 3) -> tuple[list[list[int]], list[list[int]]]:
    """`group` completions of varying length (1-5 tokens) for each of four prompts of different lengths."""
    g = torch.Generator().manual_seed(seed)
    prompts, completions = [], []
    for n in lengths:
        prompt = [1] + torch.randint(4, 17, (n,), generator=g).tolist()
        for _ in range(group):
            prompts.append(prompt)
            length = int(torch.randint(1, 6, (1,), generator=g))
            completions.append(torch.randint(2, 17, (length,), generator=g).tolist())
    return prompts, completions


def plain(policy: LMPolicy, prompts, completions) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the plain forward over prompt + completion rows, and the completion mask."""
    ids, attention, mask = pack(prompts, completions, policy.pad_id)
    return policy.sequence_logprobs(ids, attention), mask


def assert_same_gradients(policy: LMPolicy, loss: torch.Tensor, reference_loss: torch.Tensor) -> None:
    """Both losses give every parameter the same gradient (to fp32 rounding, relative to its size)."""
    policy.zero_grad()
    loss.backward()
    first = {name: p.grad.clone() for name, p in policy.named_parameters()}
    policy.zero_grad()
    reference_loss.backward()
    for name, p in policy.named_parameters():
        scale = p.grad.abs().max().clamp_min(1e-3)
        assert ((first[name] - p.grad).abs().max() / scale) < 1e-4, name


@pytest.mark.parametrize("tie,kv_heads", [(True, 4), (False, 2)])
def test_shared_prompt_forward_equals_plain_forward(tie, kv_heads):
    policy = make_policy(tie, kv_heads)
    prompts, completions = groups()
    batch = pack_completions(prompts, completions, policy.pad_id)
    assert batch.prompt_ids.shape[0] == 4 and len(batch) == 12  # each prompt stored once
    logprobs, logits, values = policy.completion_logprobs(batch)
    assert values is None and logits.shape == (*logprobs.shape, policy.model.config.vocab_size)
    full, mask = plain(policy, prompts, completions)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        expected = full[row, len(prompt) - 1: len(prompt) - 1 + len(completion)]
        assert torch.allclose(logprobs[row, : len(completion)], expected, atol=1e-5)
    assert torch.equal(batch.mask.sum(1), torch.tensor([float(len(c)) for c in completions]))

    # Same loss, same gradient: each prompt's G copies' contributions are summed.
    assert_same_gradients(policy, (logprobs * batch.mask).sum(), (full * mask).sum())


def test_values_come_from_the_states_that_predict_each_completion_token():
    policy = make_policy(False, 2)
    torch.nn.init.normal_(policy.add_value_head().weight, std=0.5)
    prompts, completions = groups(seed=2)
    logprobs, _, values = policy.completion_logprobs(pack_completions(prompts, completions, policy.pad_id),
                                                     return_values=True)
    ids, attention, _ = pack(prompts, completions, policy.pad_id)
    _, full_values = policy.sequence_logprobs(ids, attention, return_values=True)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        expected = full_values[row, len(prompt) - 1: len(prompt) - 1 + len(completion)]
        assert torch.allclose(values[row, : len(completion)], expected, atol=1e-5)
    # Without the LM head (a reward model's read): the same values.
    only = policy.completion_values(pack_completions(prompts, completions, policy.pad_id))
    lengths = [len(c) for c in completions]
    for row, n in enumerate(lengths):
        assert torch.allclose(only[row, :n], values[row, :n], atol=1e-6)
    with pytest.raises(ValueError, match="value head"):
        make_policy(True, 4).completion_logprobs(pack_completions(prompts, completions, 0), return_values=True)
    with pytest.raises(ValueError, match="value head"):
        make_policy(True, 4).completion_values(pack_completions(prompts, completions, 0))


def test_other_hf_models_take_the_plain_path(tmp_path):
    policy = LMPolicy.from_pretrained(str(build_tiny_hf_model(tmp_path, alphabet=ALPHABET)))
    prompts, completions = groups(seed=3)
    logprobs, _, _ = policy.completion_logprobs(pack_completions(prompts, completions, policy.pad_id))
    full, _ = plain(policy, prompts, completions)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        expected = full[row, len(prompt) - 1: len(prompt) - 1 + len(completion)]
        assert torch.allclose(logprobs[row, : len(completion)], expected, atol=1e-5)


def test_minibatch_rows_keep_only_their_prompts_and_columns():
    policy = make_policy(False, 2)
    prompts, completions = groups(seed=4)
    batch = pack_completions(prompts, completions, policy.pad_id)
    index = torch.tensor([5, 0, 4, 11])
    sub = batch.rows(index)
    used = {tuple(prompts[i]) for i in index.tolist()}
    assert sub.prompt_ids.shape[0] == len(used)
    assert sub.completion_ids.shape[1] == max(len(completions[i]) for i in index.tolist())
    assert sub.prompt_ids.shape[1] == max(len(p) for p in used)
    for row, i in enumerate(index.tolist()):
        assert sub.prompt_ids[sub.prompt_of[row], : sub.prompt_lens[sub.prompt_of[row]]].tolist() == prompts[i]
    whole = policy.completion_logprobs(batch)[0]
    part = policy.completion_logprobs(sub)[0]
    width = part.shape[1]
    assert torch.allclose((part * sub.mask), (whole[index, :width] * batch.mask[index, :width]), atol=1e-5)


@pytest.mark.parametrize("prompts,completions,name", [([[1]], [], "completions"), ([], [], "prompts"),
                                                      ([[]], [[3]], "prompts")])
def test_bad_batches_are_clear_errors(prompts, completions, name):
    with pytest.raises(ValueError, match=name):
        pack_completions(prompts, completions, 0)


def test_bucketed_forward_equals_the_shared_prompt_forward():
    """Long completions (agent transcripts) take length-sorted buckets of plain forwards: same values."""
    from alphaloop.policies.prefix import bucketed_forward, completion_forward, long_completions

    policy = make_policy(True, 2)
    prompts, completions = groups(seed=3, lengths=(2, 4, 1), group=5)
    completions = [c * 6 for c in completions]           # up to 30 tokens after 2-5-token prompts
    batch = pack_completions(prompts, completions, policy.pad_id)
    assert long_completions(batch.prompt_lens, batch.lengths)
    args = (policy.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids, batch.prompt_of, batch.lengths)
    logits, hidden = bucketed_forward(*args, rows_per_bucket=4)
    ref_logits, ref_hidden = completion_forward(*args)
    mask = batch.mask[:, :, None] > 0
    assert torch.allclose(logits * mask, ref_logits * mask, atol=1e-5)
    assert torch.allclose(hidden * mask, ref_hidden * mask, atol=1e-5)
    full, full_mask = plain(policy, prompts, completions)
    logprobs = policy.completion_logprobs(batch)[0]          # dispatches to the buckets
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        expected = full[row, len(prompt) - 1: len(prompt) - 1 + len(completion)]
        assert torch.allclose(logprobs[row, : len(completion)], expected, atol=1e-5)


@pytest.mark.parametrize("rows_per_bucket", [1, 5, None])
def test_attention_buckets_change_nothing_but_speed(rows_per_bucket):
    """Completions attend in length-sorted buckets (one per row, five rows, the cost model's
    choice): values and gradients equal the plain forward's."""
    from alphaloop.policies.prefix import completion_forward

    policy = make_policy(False, 2)
    prompts, completions = groups(seed=6, lengths=(3, 7, 1, 5, 2), group=4)
    batch = pack_completions(prompts, completions, policy.pad_id)
    logits, _ = completion_forward(policy.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids,
                                   batch.prompt_of, batch.lengths, rows_per_bucket=rows_per_bucket)
    logprobs = torch.log_softmax(logits, -1).gather(-1, batch.completion_ids[:, :, None]).squeeze(-1)
    full, mask = plain(policy, prompts, completions)
    width = logprobs.shape[1]
    expected = torch.stack([torch.nn.functional.pad(full[row, len(p) - 1: len(p) - 1 + len(c)], (0, width - len(c)))
                            for row, (p, c) in enumerate(zip(prompts, completions))])
    assert torch.allclose(logprobs * batch.mask, expected * batch.mask, atol=1e-5)
    assert_same_gradients(policy, (logprobs * batch.mask).sum(), (full * mask).sum())


def test_the_cost_model_picks_the_cheapest_split():
    """`_attention_buckets` against every split at multiples of BUCKET_STEP rows."""
    import itertools

    from alphaloop.policies import prefix

    def cost(lengths, widths, sizes):
        total, start = 0, 0
        for size in sizes:
            rows = range(start, start + size)
            t = max(1, max(lengths[r] for r in rows))
            total += size * t * (max(widths[r] for r in rows) + t) + prefix.BUCKET_COST
            start += size
        return total

    g = torch.Generator().manual_seed(0)
    for n in (1, 8, 20, 40):
        lengths = sorted(torch.randint(1, 90, (n,), generator=g).tolist(), reverse=True)
        widths = torch.randint(3, 40, (n,), generator=g).tolist()
        sizes = prefix._attention_buckets(lengths, widths)
        assert sum(sizes) == n and all(s > 0 for s in sizes)
        cuts = list(range(prefix.BUCKET_STEP, n, prefix.BUCKET_STEP))
        best = min(cost(lengths, widths, [b - a for a, b in zip((0, *chosen), (*chosen, n))])
                   for k in range(len(cuts) + 1) for chosen in itertools.combinations(cuts, k))
        assert cost(lengths, widths, sizes) == best
    # Even lengths: one bucket; one very long row among short ones: split off.
    assert prefix._attention_buckets([20] * 64, [8] * 64) == [64]
    assert prefix._attention_buckets([300] + [10] * 63, [8] * 64)[0] == prefix.BUCKET_STEP


def test_reading_some_states_computes_only_those_in_the_last_layer():
    """`keep` and `completion_values(at=)`: the kept states (and their gradients) equal the full forward's."""
    from alphaloop.policies.prefix import completion_forward

    policy = make_policy(True, 4)
    head = policy.add_value_head()
    torch.nn.init.normal_(head.weight, std=0.5)
    prompts, completions = groups(seed=7)
    batch = pack_completions(prompts, completions, policy.pad_id)
    last = batch.lengths - 1
    values = policy.completion_values(batch)
    at_last = policy.completion_values(batch, at=last)
    assert at_last.shape == (len(completions),)
    assert torch.allclose(at_last, values.gather(1, last[:, None]).squeeze(1), atol=1e-6)
    assert_same_gradients(policy, at_last.sum(), values.gather(1, last[:, None]).sum())
    keep = torch.zeros(batch.completion_ids.shape, dtype=torch.bool)
    keep[:, 0] = True
    _, hidden = completion_forward(policy.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids,
                                   batch.prompt_of, batch.lengths, with_logits=False, keep=keep)
    _, full = completion_forward(policy.model, batch.prompt_ids, batch.prompt_lens, batch.completion_ids,
                                 batch.prompt_of, batch.lengths, with_logits=False)
    assert torch.allclose(hidden[:, 0], full[:, 0], atol=1e-6)
