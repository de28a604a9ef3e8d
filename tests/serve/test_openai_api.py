"""`alphaloop serve` through the official `openai` client: completions and chat, streamed and not, n > 1,
log-probs, stop strings, seeds, and requests from many clients decoded in one batch."""

from __future__ import annotations

import math
import threading

import pytest
import torch

ARITH_PROMPT = "12+34="


def hf_greedy(policy_dir, prompt: str, max_new_tokens: int) -> tuple[str, list[float]]:
    """Greedy text and its tokens' log-probs recomputed by Hugging Face's own model class and `generate`
    on the saved directory (EOS suppressed), independently of the server's decoder and sampler."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    model = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer.encode(prompt, add_special_tokens=False)])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=max_new_tokens,
                             suppress_tokens=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id)
        logits = model(out).logits[0, ids.shape[1] - 1:-1]
    completion = out[0, ids.shape[1]:]
    logprobs = torch.log_softmax(logits.float(), -1).gather(-1, completion[:, None]).squeeze(1)
    return tokenizer.decode(completion, skip_special_tokens=True), logprobs.tolist()


@pytest.mark.parametrize("model", ["arith", "gpt"])
def test_greedy_completion_matches_hugging_face_generate(served, client, model):
    lm = served.lms[model]
    expected, logprobs = hf_greedy(lm.policy_dir, ARITH_PROMPT, 12)
    out = client.completions.create(model=model, prompt=ARITH_PROMPT, max_tokens=12, temperature=0, logprobs=3,
                                    extra_body={"ignore_eos": True})
    choice = out.choices[0]
    assert choice.text == expected and choice.finish_reason == "length"
    assert choice.logprobs.tokens == list(expected)
    assert choice.logprobs.token_logprobs == pytest.approx(logprobs, abs=1e-4)
    assert choice.logprobs.text_offset == list(range(12))
    for token, top in zip(choice.logprobs.tokens, choice.logprobs.top_logprobs):
        assert max(top, key=top.get) == token          # greedy: the sampled token is the most probable one
    assert out.usage.prompt_tokens == len(ARITH_PROMPT) + 1 and out.usage.completion_tokens == 12
    assert out.usage.total_tokens == out.usage.prompt_tokens + 12


def test_models_list_each_served_language_model(client):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"arith", "gpt"}                  # the game agent is listed by /v1/games
    assert models["arith"].model_extra["max_model_len"] == 160
    assert models["arith"].model_extra["chat_template"].startswith("arithmetic")
    assert client.models.retrieve("gpt").id == "gpt"


def test_chat_uses_the_env_template_and_streams_the_same_text(client):
    plain = client.completions.create(model="arith", prompt=ARITH_PROMPT, max_tokens=10, temperature=0,
                                      extra_body={"ignore_eos": True}).choices[0].text
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": " 12+34 "}]
    chat = client.chat.completions.create(model="arith", messages=messages, max_completion_tokens=10, temperature=0,
                                          logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
    assert chat.choices[0].message.content == plain and chat.choices[0].message.role == "assistant"
    assert [t.token for t in chat.choices[0].logprobs.content] == list(plain)
    assert all(len(t.top_logprobs) == 2 for t in chat.choices[0].logprobs.content)
    assert chat.usage.prompt_tokens == len(ARITH_PROMPT) + 1 and chat.usage.completion_tokens == 10

    stream = client.chat.completions.create(model="arith", messages=messages, max_tokens=10, temperature=0,
                                            stream=True, stream_options={"include_usage": True},
                                            extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    # Sent as the tokens come; chunks that queue up while the client is behind go out as one event, so on
    # a busy machine all ten may arrive together.
    assert 1 <= len([c for c in chunks if c.choices and c.choices[0].delta.content]) <= 10
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10


def test_streamed_completions_with_n_and_logprobs(client):
    stream = client.completions.create(model="arith", prompt=["1+1=", "2+2="], n=2, max_tokens=6, seed=3,
                                       logprobs=1, stream=True, extra_body={"ignore_eos": True})
    texts, finished, logprobs = {}, {}, {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            logprobs.setdefault(choice.index, []).extend(choice.logprobs.token_logprobs)
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert sorted(texts) == [0, 1, 2, 3] and all(len(t) == 6 for t in texts.values())
    assert finished == {i: "length" for i in range(4)}
    assert all(len(v) == 6 and all(lp <= 0 for lp in v) for v in logprobs.values())
    same = client.completions.create(model="arith", prompt=["1+1=", "2+2="], n=2, max_tokens=6, seed=3,
                                     extra_body={"ignore_eos": True})
    assert [c.text for c in same.choices] == [texts[i] for i in range(4)]   # the same seed, streamed or not
    assert texts[0] != texts[1]                       # the n choices of one prompt draw different samples


def test_seed_reproduces_samples_and_top_k_1_is_greedy(client):
    def sample(**kw):
        return [c.text for c in client.completions.create(model="arith", prompt="7*8=", n=3, max_tokens=16,
                                                          extra_body={"ignore_eos": True}, **kw).choices]

    first = sample(seed=11, temperature=1.5)
    assert sample(seed=11, temperature=1.5) == first
    assert sample(seed=12, temperature=1.5) != first
    greedy = client.completions.create(model="arith", prompt="7*8=", max_tokens=16, temperature=0,
                                       extra_body={"ignore_eos": True}).choices[0].text
    top1 = client.completions.create(model="arith", prompt="7*8=", n=3, max_tokens=16, temperature=1.5, seed=1,
                                     extra_body={"ignore_eos": True, "top_k": 1})
    assert [c.text for c in top1.choices] == [greedy] * 3
    nucleus = client.completions.create(model="arith", prompt="7*8=", n=2, max_tokens=16, temperature=1.0, seed=1,
                                        top_p=1e-6, extra_body={"ignore_eos": True})
    assert [c.text for c in nucleus.choices] == [greedy] * 2


def test_stop_strings_end_the_text_before_them_streamed_or_not(client):
    kwargs = {"model": "arith", "prompt": "99-9=", "max_tokens": 40, "temperature": 1.0, "seed": 4,
              "extra_body": {"ignore_eos": True}}
    full = client.completions.create(**kwargs).choices[0].text
    stop = full[5:7]
    cut = full[:full.index(stop)]
    out = client.completions.create(stop=[stop, "not in it"], logprobs=0, **kwargs)
    assert out.choices[0].text == cut and out.choices[0].finish_reason == "stop"
    assert out.choices[0].model_extra["stop_reason"] == stop
    assert "".join(out.choices[0].logprobs.tokens) == cut
    assert out.usage.completion_tokens >= len(cut) + 1
    streamed = "".join(c.choices[0].text for c in client.completions.create(stop=stop, stream=True, **kwargs))
    assert streamed == cut


def test_eos_ends_a_completion_with_finish_reason_stop(client):
    # The random GPT-2 gives EOS about 1/20 of the mass: most of 8 samples of 60 tokens meet it.
    out = client.completions.create(model="gpt", prompt="5+5=", n=8, max_tokens=60, temperature=1.0, seed=0)
    reasons = [c.finish_reason for c in out.choices]
    assert "stop" in reasons and set(reasons) <= {"stop", "length"}
    assert all(len(c.text) < 60 for c, r in zip(out.choices, reasons) if r == "stop")
    assert out.usage.completion_tokens <= 8 * 60


def test_concurrent_clients_are_decoded_in_one_batch(served, client):
    engine = served.lms["arith"].engine
    steps, sizes = engine.stats.steps, len(engine.stats.batch_sizes)
    results, errors = {}, []
    gate = threading.Barrier(8)

    def one(i: int) -> None:
        try:
            gate.wait()
            out = client.completions.create(model="arith", prompt=f"{i}+{i}=", max_tokens=60, temperature=0.8, seed=i,
                                            extra_body={"ignore_eos": True})
            results[i] = (out.choices[0].text, out.usage.completion_tokens)
        except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 8 and all(tokens == 60 for _, tokens in results.values())
    batch_sizes = list(engine.stats.batch_sizes)[sizes:]
    used = engine.stats.steps - steps
    assert max(batch_sizes) >= 4, batch_sizes           # several clients' rows sampled in the same step
    assert used < 8 * 60 * 0.6, used                    # far fewer steps than decoding one request at a time
    assert sum(batch_sizes) == 8 * 60                   # every token of every request, exactly once
    # Batched or alone, a seeded request gives the same text.
    alone = client.completions.create(model="arith", prompt="3+3=", max_tokens=60, temperature=0.8, seed=3,
                                      extra_body={"ignore_eos": True}).choices[0].text
    assert alone == results[3][0]


def test_every_chunk_is_json_with_usage_null_until_the_last(served):
    import json

    import httpx

    body = {"model": "arith", "prompt": "1=", "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{served.base}/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1]) and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert all(math.isfinite(c["created"]) for c in chunks)


def test_a_client_gone_mid_stream_frees_its_rows(served):
    import time

    import httpx

    engine = served.lms["arith"].engine
    body = {"model": "arith", "prompt": "1+2=", "max_tokens": 150, "stream": True, "ignore_eos": True, "n": 4}
    admitted, sampled = engine.stats.rows_admitted, engine.stats.tokens
    with httpx.stream("POST", f"{served.base}/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.time() + 10
    while time.time() < deadline and any(row.finish_reason is None and not owner.cancelled
                                         for row, owner in zip(engine.rows, engine.owners)):
        time.sleep(0.01)
    time.sleep(0.1)
    assert engine.stats.rows_admitted == admitted + 4
    assert engine.stats.tokens - sampled < 4 * 150           # dropped before max_tokens
    out = httpx.post(f"{served.base}/completions", json={"model": "arith", "prompt": "1=", "max_tokens": 2}, timeout=30)
    assert out.status_code == 200
