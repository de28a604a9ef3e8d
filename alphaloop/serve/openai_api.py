"""The OpenAI-compatible endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions.

Responses have OpenAI's shapes, as vLLM's server produces them, so `openai.OpenAI(base_url=...)` and
every tool built on it work unchanged: `usage` in every response; with `stream: true`, server-sent
events (`data: {chunk}` lines, the last one `data: [DONE]`), and with `stream_options.include_usage`
one more chunk before [DONE] carrying the usage and no choices. Choices of a request are numbered
prompt index * n + choice. Log-probs are the model's raw log-probs (temperature 1, before top-k/top-p),
as vLLM reports them by default; a token's text is its decoded character, or the special token's name
(`<eos>`). `stop_reason` (vLLM's field) names the stop string that ended a choice.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from alphaloop.serve.chat import chat_prompt
from alphaloop.serve.errors import APIError
from alphaloop.serve.jobs import Job, Piece, check_ids, completion_budget, encode_text
from alphaloop.serve.models import ServedLM
from alphaloop.serve.rows import TokenInfo
from alphaloop.serve.schemas import ChatCompletionRequest, CompletionRequest

router = APIRouter()


def lookup(request: Request, model: str) -> ServedLM:
    """The served LM `model`; 404 (model_not_found) listing the served ids, 400 for a game agent."""
    lms, games = request.app.state.lms, request.app.state.games
    if model in lms:
        return lms[model]
    if model in games:
        raise APIError(400, f"model: {model!r} is a {games[model].game} agent, not a language model; ask "
                            f"POST /v1/games/{games[model].game}/move", param="model")
    raise APIError(404, f"model: the model {model!r} does not exist; served: {', '.join(sorted(lms)) or 'none'}",
                   param="model", code="model_not_found")


def model_card(lm: ServedLM) -> dict:
    return {"id": lm.id, "object": "model", "created": lm.created, "owned_by": "alphaloop", "root": str(lm.policy_dir),
            "parent": None, "max_model_len": lm.context, "env": lm.env,
            "chat_template": f"{lm.template.name}: {lm.template.description}"}


@router.get("/v1/models")
async def list_models(request: Request) -> dict:
    """The served language models (game agents are listed by GET /v1/games)."""
    return {"object": "list", "data": [model_card(lm) for lm in request.app.state.lms.values()]}


@router.get("/v1/models/{model:path}")
async def get_model(model: str, request: Request) -> dict:
    return model_card(lookup(request, model))


def _logprob(value: float) -> float:
    return value if math.isfinite(value) else -9999.0   # JSON has no -inf (vLLM's stand-in)


def _completion_logprobs(tokens: list[TokenInfo]) -> dict:
    tops = []
    for t in tokens:
        top = {text: _logprob(lp) for text, lp in t.top}
        top.setdefault(t.text, _logprob(t.logprob))
        tops.append(top)
    return {"tokens": [t.text for t in tokens], "token_logprobs": [_logprob(t.logprob) for t in tokens],
            "top_logprobs": tops, "text_offset": [t.offset for t in tokens]}


def _chat_logprobs(tokens: list[TokenInfo]) -> dict:
    def entry(text: str, lp: float) -> dict:
        return {"token": text, "logprob": _logprob(lp), "bytes": list(text.encode())}

    return {"content": [entry(t.text, t.logprob) | {"top_logprobs": [entry(x, lp) for x, lp in t.top]}
                        for t in tokens], "refusal": None}


def _start(lm: ServedLM, prompts: list[list[int]], body, limits: list[int], logprobs: int | None) -> Job:
    """The job for `prompts`, queued with the model's engine (503 if it is full)."""
    job = Job(lm, prompts, body, limits, logprobs)
    job.submit()
    return job


def _stream(job: Job, first: list[dict], piece_chunk: Callable[[Piece], dict], head: dict,
            include_usage: bool) -> StreamingResponse:
    """Server-sent events: `first` chunks, then one per engine chunk, the usage chunk, [DONE]."""

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    async def events() -> AsyncIterator[str]:
        extra = {"usage": None} if include_usage else {}
        try:
            for choices in first:
                yield event(head | {"choices": [choices]} | extra)
            async for batch in job.batches():   # one write per wake-up, however many chunks arrived
                yield "".join(event(head | {"choices": [piece_chunk(piece)]} | extra) for piece in batch)
            if include_usage:
                yield event(head | {"choices": [], "usage": job.usage()})
        except APIError as exc:
            yield event(exc.body())
        finally:
            job.cancel()   # a client gone mid-stream frees its rows at the engine's next step
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _collect(job: Job) -> tuple[list[str], list[list[TokenInfo]], list[str | None], list[str | None]]:
    """Every choice's whole text, tokens, finish reason and stop reason."""
    texts, tokens = [""] * job.choices, [[] for _ in range(job.choices)]
    finish, stop = [None] * job.choices, [None] * job.choices
    try:
        async for batch in job.batches():
            for piece in batch:
                texts[piece.index] += piece.chunk.text
                tokens[piece.index] += piece.chunk.tokens
                if piece.chunk.finish_reason is not None:
                    finish[piece.index], stop[piece.index] = piece.chunk.finish_reason, piece.chunk.stop_reason
    finally:
        job.cancel()
    return texts, tokens, finish, stop


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    lm = lookup(request, body.model)
    prompts = []
    for i, prompt in enumerate(body.prompts()):
        param = "prompt" if isinstance(body.prompt, str) or len(body.prompts()) == 1 else f"prompt.{i}"
        prompts.append(encode_text(lm, prompt, param) if isinstance(prompt, str) else check_ids(lm, prompt, param))
    limits = [completion_budget(lm, len(ids), body.max_tokens, "prompt") for ids in prompts]
    job = _start(lm, prompts, body, limits, body.logprobs)
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": lm.id}
    want = body.logprobs is not None
    if body.stream:
        def piece_chunk(piece: Piece) -> dict:
            chunk = piece.chunk
            return {"index": piece.index, "text": chunk.text,
                    "logprobs": _completion_logprobs(chunk.tokens) if want else None,
                    "finish_reason": chunk.finish_reason, "stop_reason": chunk.stop_reason}

        return _stream(job, [], piece_chunk, head, body.include_usage())
    texts, tokens, finish, stop = await _collect(job)
    choices = [{"index": i, "text": texts[i], "logprobs": _completion_logprobs(tokens[i]) if want else None,
                "finish_reason": finish[i], "stop_reason": stop[i]} for i in range(job.choices)]
    return JSONResponse(head | {"choices": choices, "usage": job.usage()})


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request):
    lm = lookup(request, body.model)
    text = chat_prompt(lm.template, body.messages)
    if text is None:
        raise APIError(400, "messages: expected at least one message with role 'user' (its text is the prompt)",
                       param="messages")
    ids = encode_text(lm, text, "messages")
    limit_param = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
    limit = completion_budget(lm, len(ids), body.token_limit(), "messages", limit_param)
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    job = _start(lm, [ids], body, [limit], logprobs)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": lm.id}
    if body.stream:
        head["object"] = "chat.completion.chunk"
        first = [{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                 for i in range(job.choices)]

        def piece_chunk(piece: Piece) -> dict:
            chunk = piece.chunk
            return {"index": piece.index, "delta": {"content": chunk.text} if chunk.text else {},
                    "logprobs": _chat_logprobs(chunk.tokens) if body.logprobs and chunk.tokens else None,
                    "finish_reason": chunk.finish_reason, "stop_reason": chunk.stop_reason}

        return _stream(job, first, piece_chunk, head, body.include_usage())
    texts, tokens, finish, stop = await _collect(job)
    choices = [{"index": i, "message": {"role": "assistant", "content": texts[i], "refusal": None},
                "logprobs": _chat_logprobs(tokens[i]) if body.logprobs else None,
                "finish_reason": finish[i], "stop_reason": stop[i]} for i in range(job.choices)]
    return JSONResponse(head | {"choices": choices, "usage": job.usage()})
