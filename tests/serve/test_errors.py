"""Every malformed request gets OpenAI's error shape with the right 4xx code, naming what is wrong; the
server answers normally afterwards."""

from __future__ import annotations

import httpx
import pytest

OK_COMPLETION = {"model": "arith", "prompt": "1+2=", "max_tokens": 4}
TOO_LONG = "context_length_exceeded"
OK_CHAT = {"model": "arith", "messages": [{"role": "user", "content": "1+2"}], "max_tokens": 4}


def completion(**changes):
    return {k: v for k, v in (OK_COMPLETION | changes).items() if v is not ...}


def chat(**changes):
    return {k: v for k, v in (OK_CHAT | changes).items() if v is not ...}


# (path, JSON body or raw bytes, status, param, words in the message, code)
CASES = [
    ("/v1/completions", b'{"model": "arith", "prompt": ', 400, None, "not valid JSON", None),
    ("/v1/completions", b"", 400, None, "JSON object", None),
    ("/v1/completions", [1, 2], 400, None, "JSON object", None),
    ("/v1/completions", completion(model="nope"), 404, "model", "does not exist", "model_not_found"),
    ("/v1/completions", completion(model="ttt"), 400, "model", "game", None),
    ("/v1/completions", completion(model=5), 400, "model", "string", None),
    ("/v1/completions", completion(prompt=...), 400, "prompt", "required", None),
    ("/v1/completions", completion(temperature="hot"), 400, "temperature", "number", None),
    ("/v1/completions", completion(temperature=2.5), 400, "temperature", "less than or equal to 2", None),
    ("/v1/completions", completion(top_p=0), 400, "top_p", "greater than 0", None),
    ("/v1/completions", completion(top_k=-2), 400, "top_k", "greater than or equal to -1", None),
    ("/v1/completions", completion(n=0), 400, "n", "greater than or equal to 1", None),
    ("/v1/completions", completion(n=1000), 400, "n", "less than or equal to 128", None),
    ("/v1/completions", completion(max_tokens=0), 400, "max_tokens", "greater than or equal to 1", None),
    ("/v1/completions", completion(max_tokens="4"), 400, "max_tokens", "integer", None),
    ("/v1/completions", completion(max_tokens=1.5), 400, "max_tokens", "integer", None),
    ("/v1/completions", completion(max_tokens=200), 400, "max_tokens", "context length of 160", TOO_LONG),
    ("/v1/completions", completion(prompt="1+" * 90), 400, "prompt", "maximum context length", TOO_LONG),
    ("/v1/completions", completion(prompt="héllo"), 400, "prompt", "not in the model's alphabet", "unknown_characters"),
    ("/v1/completions", completion(prompt=["1+1=", "ä"]), 400, "prompt.1", "alphabet", "unknown_characters"),
    ("/v1/completions", completion(prompt=[]), 400, "prompt", "at least one", None),
    ("/v1/completions", completion(prompt=[1, 999]), 400, "prompt", "token ids must be in", None),
    ("/v1/completions", completion(prompt=[1, "a"]), 400, "prompt", "a string, a list of strings", None),
    ("/v1/completions", completion(stop=5), 400, "stop", "a string or a list of strings", None),
    ("/v1/completions", completion(stop=["x"] * 17), 400, "stop", "at most 16", None),
    ("/v1/completions", completion(stop=[""]), 400, "stop", "non-empty", None),
    ("/v1/completions", completion(logprobs=21), 400, "logprobs", "less than or equal to 20", None),
    ("/v1/completions", completion(prompt=["1="] * 33, n=128, max_tokens=1), 400, "n", "at most 4096", None),
    ("/v1/completions", completion(seed="x"), 400, "seed", "integer", None),
    ("/v1/completions", completion(stream="yes"), 400, "stream", "boolean", None),
    ("/v1/completions", completion(stream_options={"include_usage": True}), 400, "stream_options", "stream: true",
     None),
    ("/v1/completions", completion(presence_penalty=0.5), 400, "presence_penalty", "only 0", None),
    ("/v1/completions", completion(logit_bias={"5": 1.0}), 400, "logit_bias", "not supported", None),
    ("/v1/completions", completion(echo=True), 400, "echo", "not supported", None),
    ("/v1/completions", completion(best_of=3), 400, "best_of", "equal to n", None),
    ("/v1/completions", completion(frobnicate=1), 400, "frobnicate", "unrecognized", None),
    ("/v1/chat/completions", chat(messages=[]), 400, "messages", "at least 1", None),
    ("/v1/chat/completions", chat(messages=[{"role": "system", "content": "hi"}]), 400, "messages", "role 'user'",
     None),
    ("/v1/chat/completions", chat(messages=[{"role": "robot", "content": "1"}]), 400, "messages.0.role", "user",
     None),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": 5}]), 400, "messages.0.content",
     "a string or a list of text parts", None),
    ("/v1/chat/completions", chat(messages="1+2"), 400, "messages", "list", None),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": "1+2\u00e9"}]), 400, "messages", "alphabet",
     "unknown_characters"),
    ("/v1/chat/completions", chat(max_completion_tokens=500), 400, "max_completion_tokens", "context length",
     TOO_LONG),
    ("/v1/chat/completions", chat(top_logprobs=3), 400, "top_logprobs", "logprobs: true", None),
    ("/v1/chat/completions", chat(logprobs=True, top_logprobs=30), 400, "top_logprobs", "less than or equal to 20",
     None),
    ("/v1/chat/completions", chat(tools=[{"type": "function"}]), 400, "tools", "not supported", None),
    ("/v1/chat/completions", chat(model=["arith"]), 400, "model", "string", None),
    ("/v1/games/tictactoe/move", {"position": "55"}, 400, "position", "cell 5 is already taken", "illegal_position"),
    ("/v1/games/tictactoe/move", {"position": "1a"}, 400, "position", "expected a cell digit 1..9", "illegal_position"),
    ("/v1/games/tictactoe/move", {"position": "1425367"}, 400, "position", "already over", "illegal_position"),
    ("/v1/games/tictactoe/move", {"simulations": -1}, 400, "simulations", "greater than or equal to 0", None),
    ("/v1/games/tictactoe/move", {"simulations": "many"}, 400, "simulations", "integer", None),
    ("/v1/games/tictactoe/move", {"model": "nope"}, 404, "model", "no game agent", "model_not_found"),
    ("/v1/games/connect4/move", {}, 404, "game", "no agent serving connect4", None),
    ("/v1/games/chess/move", {}, 404, "game", "no game 'chess'", None),
]


@pytest.fixture(scope="module")
def http(served):
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("path, body, status, param, words, code", CASES,
                         ids=[f"{i}-{c[0].rsplit('/', 1)[-1]}-{c[3]}" for i, c in enumerate(CASES)])
def test_malformed_requests_get_a_4xx_in_openai_shape(http, path, body, status, param, words, code):
    if isinstance(body, bytes):
        response = http.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = http.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert words in error["message"], error
    assert error["code"] == code


def test_routes_methods_and_sizes_are_errors_too(http):
    assert http.get("/v1/nothing").json()["error"]["message"].startswith("no route GET /v1/nothing")
    assert http.get("/v1/nothing").status_code == 404
    response = http.get("/v1/completions")
    assert response.status_code == 405 and "does not take GET" in response.json()["error"]["message"]
    response = http.post("/v1/completions", content=b"x" * (2 << 20), headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["type"] == "invalid_request_error"
    response = http.post("/v1/completions", content=b'{"model": "arith"}', headers={"content-type": "text/plain"})
    assert response.status_code == 400
    schema = http.get("/openapi.json").json()     # the schema clients and fuzzers read
    assert {"/v1/completions", "/v1/chat/completions", "/v1/games/{game}/move"} <= set(schema["paths"])


def test_the_openai_client_raises_its_usual_exceptions(client):
    import openai

    with pytest.raises(openai.NotFoundError) as info:
        client.completions.create(model="missing", prompt="1=")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.chat.completions.create(model="arith", messages=[{"role": "user", "content": "1"}], temperature=9)


def test_the_server_still_answers_after_every_error(http, client):
    for path, body, *_ in CASES:
        if isinstance(body, bytes):
            http.post(path, content=body, headers={"content-type": "application/json"})
        else:
            http.post(path, json=body)
    assert http.get("/health").json()["status"] == "ok"
    out = client.completions.create(model="arith", prompt="1+2=", max_tokens=3, extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 3
    out = client.completions.create(model="gpt", prompt="1+2=", max_tokens=3, extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 3


def test_values_at_the_edges_of_their_range_are_served(client):
    """top_k has no upper bound (any k >= the vocabulary is no truncation), seeds span 64 bits either side;
    a top_k past int64 once failed the engine's step, and with it every request in the batch."""
    for extra in ({"top_k": 2**64}, {"top_k": 2**63 - 1, "seed": 2**64 - 1}, {"seed": -(2**63)}):
        out = client.completions.create(model="arith", prompt="1+2=", max_tokens=3, extra_body={"ignore_eos": True}
                                        | extra)
        assert out.usage.completion_tokens == 3, extra


def test_a_failure_inside_the_engine_fails_only_its_requests(served, client, monkeypatch):
    import openai

    engine = served.lms["arith"].engine

    def broken(tokens):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(engine.decoder, "advance", broken)   # the engine replaces its decoder after a failure
    with pytest.raises(openai.InternalServerError, match="injected failure"):
        client.completions.create(model="arith", prompt="1=", max_tokens=5)
    out = client.completions.create(model="arith", prompt="1=", max_tokens=5, extra_body={"ignore_eos": True})
    assert out.usage.completion_tokens == 5
