"""The server's decoding pieces on their own: rows joining and leaving a running batch decode exactly as
alone, per-row sampling honours each row's settings, and a stop string is never streamed."""

from __future__ import annotations

import pytest
import torch

from alphaloop.policies.arch import LMArch
from alphaloop.policies.lm import LMPolicy, build_tiny_hf_model
from alphaloop.policies.stepwise import StepDecoder
from alphaloop.serve.rows import Detokenizer, Row
from alphaloop.serve.sampling import choose

ALPHABET = "0123456789+= "


def full_forward_logits(policy: LMPolicy, ids: list[int]) -> torch.Tensor:
    """The next-token logits of `ids` by one uncached forward of the model over them alone."""
    with torch.no_grad():
        return policy.model(torch.tensor([ids]))[0, -1].float()


@pytest.mark.parametrize("kind", ["lean", "hf"])
def test_rows_joining_and_leaving_decode_as_if_alone(tmp_path, kind):
    policy = LMPolicy.build(LMArch(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),
                            ALPHABET, seed=0) if kind == "lean" else LMPolicy.load(build_tiny_hf_model(tmp_path / "m"))
    prompts = {name: policy.prompt_ids(text) for name, text in
               [("a", "1+2="), ("b", "33+44="), ("c", "5"), ("d", "1+2="), ("e", "987+65= ")]}
    decoder = StepDecoder(policy, context=64)
    rows: list[str] = []
    tokens: dict[str, list[int]] = {name: [] for name in prompts}
    generator = torch.Generator().manual_seed(0)
    joins = {0: ["a", "b"], 2: ["c", "d"], 5: ["e"]}    # step -> rows that join before it
    leaves = {4: "b", 7: "a"}                            # step -> a row that leaves after it
    for step in range(12):
        if step in joins:
            decoder.add([prompts[n] for n in joins[step]], [20] * len(joins[step]))
            rows += joins[step]
        for row, name in enumerate(rows):
            expected = full_forward_logits(policy, prompts[name] + tokens[name])
            assert torch.allclose(decoder.logits[row].float(), expected, atol=2e-4), (step, name)
        chosen = torch.randint(4, len(policy.tokenizer), (len(rows),), generator=generator)
        for name, token in zip(rows, chosen.tolist()):
            tokens[name].append(token)
        if step in leaves:
            keep = [i for i, name in enumerate(rows) if name != leaves[step]]
            decoder.keep(keep)
            chosen, rows = chosen[keep], [rows[i] for i in keep]
        decoder.advance(chosen)
    assert rows == ["c", "d", "e"]
    if kind == "lean":
        # b (the longest prompt, 7 tokens) left before e joined: the rebuild dropped its leading padding, so the
        # cache is as long as a (5 tokens + 5 steps) + 7 more steps, not 7 + 12.
        assert decoder.cache.length == 5 + 5 + 7


def test_per_row_sampling_settings():
    torch.manual_seed(0)
    logits = torch.randn(1, 10).repeat(4, 1)
    logits[:, 3] += 2.0
    probs = torch.softmax(logits[0], -1)
    order = probs.argsort(descending=True).tolist()
    nucleus = order[: int((probs[order].cumsum(0) < 0.6).sum()) + 1]   # smallest set with mass >= 0.6
    temperature = torch.tensor([0.0, 1.0, 1.0, 1.0])
    top_p = torch.tensor([1.0, 1.0, 0.6, 1.0])
    top_k = torch.tensor([0, 2, 0, 0])
    shared = torch.Generator().manual_seed(1)
    seen: list[set[int]] = [set() for _ in range(4)]
    counts = torch.zeros(10)
    for _ in range(2000):
        chosen = choose(logits, temperature, top_p, top_k, [None] * 4, shared, top_n=3)
        for row in range(4):
            seen[row].add(int(chosen.tokens[row]))
        counts[int(chosen.tokens[3])] += 1
    assert seen[0] == {order[0]}                            # greedy
    assert seen[1] == set(order[:2])                        # top-k 2
    assert seen[2] == set(nucleus)                          # top-p 0.6
    assert torch.allclose(counts / 2000, probs, atol=0.04)  # plain sampling follows the softmax
    assert chosen.top_ids[0].tolist() == order[:3]
    assert torch.allclose(chosen.logprobs, torch.log_softmax(logits, -1).gather(1, chosen.tokens[:, None])[:, 0])


def test_a_seeded_row_draws_the_same_whatever_shares_its_batch():
    logits = torch.randn(5, 12)
    ones = torch.ones(5)

    def draws(rows: list[int], steps: int = 20) -> list[int]:
        mine = torch.Generator().manual_seed(7)
        generators = [mine if r == 0 else None for r in rows]
        out = []
        for _ in range(steps):
            no_k = torch.zeros(len(rows), dtype=torch.long)
            picked = choose(logits[rows], ones[: len(rows)], ones[: len(rows)], no_k, generators,
                            torch.Generator().manual_seed(len(out)))
            out.append(int(picked.tokens[0]))
        return out

    assert draws([0]) == draws([0, 1, 2, 3, 4])


def test_stop_strings_are_held_back_and_cut_out():
    tokenizer = LMPolicy.build(LMArch(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=2,
                                      intermediate_size=16), "abc>", 0).tokenizer
    detok = Detokenizer(tokenizer)
    ids = {ch: tokenizer.convert_tokens_to_ids(ch) for ch in "abc>"}
    row = Row(0, max_tokens=20, stops=["b>c", "cc"], eos=tokenizer.eos_token_id, want_logprobs=True,
              detokenizer=detok)
    sent = []
    for ch in "ab>ab>c":
        chunk = row.push(ids[ch], -1.0)
        sent.append(chunk.text if chunk else None)
    # "b" could start "b>c": held until "b>a" rules it out; "b>c" ends the completion before it.
    assert sent == ["a", None, None, "b>a", None, None, ""]
    assert row.finish_reason == "stop" and row.text == "ab>a" and chunk.stop_reason == "b>c"
    assert chunk.completion_tokens == 7
    row = Row(0, max_tokens=3, stops=[], eos=tokenizer.eos_token_id, want_logprobs=False, detokenizer=detok)
    assert [row.push(ids["a"], -1.0).text for _ in range(3)] == ["a", "a", "a"] and row.finish_reason == "length"
