"""Fuzzing the running server from its own OpenAPI schema (schemathesis over hypothesis).

Every operation in `/openapi.json` is called with requests generated from the schema: valid ones
(positive mode: any value the schema allows, which still includes many a model refuses, such as a
prompt of characters outside its alphabet or a max_tokens over its context) and invalid ones
(negative mode: wrong types, values out of range, missing and unknown fields). The contract checked
is the one docs/serving.md promises: never a 5xx, every 4xx in OpenAI's error shape, and a server
that still answers a normal request afterwards. Generation is derandomized (the same examples on
every run) and bounded, so the test is reproducible and takes a few tens of seconds.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

# Examples per operation and mode. The LM operations generate tokens (up to the tiny models' context of
# 160 per choice, n up to 128), so they get fewer than the cheap GET routes.
EXAMPLES = {"POST": 60, "GET": 20}
ALPHABET = "0123456789+-*=> "   # the test models' (conftest.ALPHABET)
RUNS = ("done", "live")   # the runs the fuzzed runs directory holds: finished, running
FILES = ("report.html", "summary.json", "metrics.jsonl", "recipe.toml", "timings.json", "plots/loss.png",
         "../done/recipe.toml", "stages/0-imitate/result.json")
TIMEOUT = 30   # seconds per request: a hang is a failure, not a stuck test


def check_answer(case, response) -> None:
    """No 5xx; a 4xx is OpenAI's {"error": {"message", "type", "param", "code"}}."""
    where = f"{case.method} {case.formatted_path} body={case.body!r} query={case.query!r}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        error = response.json().get("error")
        assert isinstance(error, dict), f"{where}: {response.status_code} not in OpenAI's shape: {response.text[:300]}"
        assert set(error) == {"message", "type", "param", "code"}, f"{where}: {error}"
        assert isinstance(error["message"], str) and error["message"], f"{where}: {error}"
        assert error["type"] == "invalid_request_error", f"{where}: {error}"


def alphabet_text(text: str) -> str:
    """`text` with every character mapped into the tiny models' alphabet (so the prompt reaches the engine)."""
    return "".join(ALPHABET[ord(c) % len(ALPHABET)] for c in text)


def in_vocabulary(ids):
    """Token ids (or a list of them) brought into the tiny models' vocabulary of len(ALPHABET) + 4 ids."""
    if isinstance(ids, list):
        return [in_vocabulary(i) for i in ids]
    return ids % (len(ALPHABET) + 4) if isinstance(ids, int) and not isinstance(ids, bool) else ids


def steer(case, level: int) -> None:
    """Aim a generated request at what is served: at level 0 it goes as generated (mostly an unknown
    model, an unknown game: refused early); at 1 it names a served model or game, so the checks behind
    the lookup run; at 2 its texts are also in the model's alphabet, so it reaches the engine."""
    if level == 0:
        return
    if "game" in (case.path_parameters or {}):
        case.path_parameters["game"] = "tictactoe"
    if "model" in (case.path_parameters or {}):
        case.path_parameters["model"] = "arith"
    if "name" in (case.path_parameters or {}):
        case.path_parameters["name"] = RUNS[level % 2]
    if "path" in (case.path_parameters or {}) and level == 2:
        case.path_parameters["path"] = FILES[len(str(case.query)) % len(FILES)]
    body = case.body
    if not isinstance(body, dict):
        return
    if case.operation.path.endswith("/move"):
        body.pop("model", None)
        if isinstance(body.get("simulations"), int) and body["simulations"] > 200:
            body["simulations"] = 200   # the search's cost, not its handling, grows past this
        return
    if "model" in body:
        body["model"] = "arith" if level == 2 or len(str(body)) % 2 else "gpt"
    if level < 2:
        return
    for name in ("presence_penalty", "frequency_penalty", "logit_bias", "echo", "suffix", "best_of", "tools",
                 "tool_choice", "response_format"):
        body.pop(name, None)   # options refused by name: tested in test_errors.py
    if not body.get("stream"):
        body.pop("stream_options", None)
    for name, value in body.items():   # 3.0 is an integer to JSON Schema, not to the strict models
        if isinstance(value, float) and value.is_integer() and name not in ("temperature", "top_p"):
            body[name] = int(value)
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(name), int) and body[name] > 16:
            body[name] = 1 + body[name] % 16
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        body["prompt"] = alphabet_text(prompt)
    elif isinstance(prompt, list):
        body["prompt"] = [alphabet_text(p) if isinstance(p, str) else in_vocabulary(p) for p in prompt]
    for message in body.get("messages") or []:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = alphabet_text(message["content"])


def test_fuzz_every_operation(served, tmp_path, run_factory):
    run_factory(tmp_path / "runs" / "done", "finished")
    run_factory(tmp_path / "runs" / "live", "running")
    app, runs_before = served.app, served.app.state.runs_dir
    app.state.runs_dir = tmp_path / "runs"
    try:
        fuzz(served)
    finally:
        app.state.runs_dir = runs_before


def fuzz(served) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8, [op.label for op in operations]
    session = requests.Session()
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            @settings(max_examples=EXAMPLES.get(operation.method.upper(), 15), derandomize=True, deadline=None,
                      database=None, suppress_health_check=list(HealthCheck), print_blob=False)
            @given(case=operation.as_strategy(generation_mode=mode), level=st.sampled_from([0, 1, 2]))
            def call(case, level: int) -> None:
                steer(case, level)
                check_answer(case, case.call(base_url=served.url, session=session, timeout=TIMEOUT))

            try:
                call()
            except Unsatisfiable:
                # Negative mode on an operation whose inputs admit any value (none, or a string path
                # parameter such as GET /v1/models/{model}): there is no invalid request to make.
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    # Still alive and still decoding: a normal request after all of that.
    reply = session.post(f"{served.url}/v1/completions", json={"model": "arith", "prompt": "1+2=", "max_tokens": 5,
                                                               "temperature": 0}, timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == 5
    assert session.get(f"{served.url}/health", timeout=TIMEOUT).status_code == 200
