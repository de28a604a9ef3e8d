"""From an HTTP request to the engine and back: prompts checked and encoded, rows submitted, chunks awaited.

The HTTP side runs on the server's event loop, the engine on its own thread; a `Job` bridges them.
It checks what only the model can check (characters outside the tokenizer's alphabet, a prompt too
long for the context, a max_tokens that does not fit), submits one engine request per prompt, and
yields the chunks the engine delivers (through `call_soon_threadsafe` onto an asyncio queue, once
per step for all clients) until every choice has finished. Cancelling a job (a client gone
mid-stream) makes the engine drop its rows at the next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from alphaloop.serve.engine import EngineFailure, EngineOverloaded, GenerationRequest
from alphaloop.serve.errors import APIError
from alphaloop.serve.models import ServedLM
from alphaloop.serve.rows import Chunk
from alphaloop.serve.schemas import Sampling


def encode_text(lm: ServedLM, text: str, param: str) -> list[int]:
    """BOS + the text's token ids; 400 naming the characters the model's tokenizer does not have."""
    detokenizer = lm.engine.detokenizer
    if detokenizer.concatenates:   # a character tokenizer: every character must be one of its tokens
        known = detokenizer.alphabet
        missing = sorted({c for c in text if c not in known})
        if missing:
            shown = "".join(missing) if len(missing) <= 20 else "".join(missing[:20]) + "..."
            raise APIError(400, f"{param}: characters {shown!r} are not in the model's alphabet "
                                f"{''.join(sorted(known))!r}", param=param, code="unknown_characters")
    with detokenizer.lock:
        return lm.policy.prompt_ids(text)


def check_ids(lm: ServedLM, ids: list[int], param: str) -> list[int]:
    """Token ids given by the client: non-empty, each an id of the model's vocabulary."""
    vocab = len(lm.engine.detokenizer.pieces)
    if not ids:
        raise APIError(400, f"{param}: expected at least one token id", param=param)
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise APIError(400, f"{param}: token ids must be in [0, {vocab}), got {bad[:5]}", param=param)
    return ids


def completion_budget(lm: ServedLM, prompt_tokens: int, max_tokens: int | None, param: str,
                      limit_param: str = "max_tokens") -> int:
    """max_tokens, or what the context leaves when it is not given; 400 when the prompt or the two
    together do not fit (vLLM's rule: prompt + max_tokens <= the model's context)."""
    if prompt_tokens >= lm.context:
        raise APIError(400, f"{param}: {prompt_tokens} tokens; this model's maximum context length is {lm.context} "
                            "tokens, and at least one must be left for the completion", param=param,
                       code="context_length_exceeded")
    if max_tokens is None:
        return lm.context - prompt_tokens
    if prompt_tokens + max_tokens > lm.context:
        raise APIError(400, f"{limit_param}: {max_tokens} tokens + the prompt's {prompt_tokens} exceed this model's "
                            f"maximum context length of {lm.context} tokens; ask for at most "
                            f"{lm.context - prompt_tokens}", param=limit_param, code="context_length_exceeded")
    return max_tokens


def merged(first: Chunk, then: Chunk) -> Chunk:
    """One chunk saying what `first` and then `then` (of the same choice) said."""
    return Chunk(first.choice, first.text + then.text, first.tokens + then.tokens, then.finish_reason,
                 then.stop_reason, then.completion_tokens)


@dataclass
class Piece:
    """A chunk of choice `index` (prompt index * n + the choice within its prompt)."""

    index: int
    chunk: Chunk


class Job:
    """One HTTP request's prompts, as engine requests; `pieces()` yields their chunks as they come."""

    def __init__(self, lm: ServedLM, prompts: list[list[int]], body: Sampling, max_tokens: list[int],
                 logprobs: int | None) -> None:
        self.lm = lm
        self.n = body.n
        self.prompt_tokens = sum(map(len, prompts))
        self.queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.requests = []
        for index, (ids, limit) in enumerate(zip(prompts, max_tokens)):
            def deliver(payload, index=index):
                self.queue.put_nowait((index, payload))

            self.requests.append(GenerationRequest(
                ids, limit, n=body.n, temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                seed=body.seed, stop=body.stop_list(), logprobs=logprobs, ignore_eos=body.ignore_eos,
                deliver=deliver, loop=loop))
        self.choices = len(prompts) * body.n
        self.completion_tokens = 0

    def submit(self) -> None:
        """Queue every prompt with the engine; 503 (and nothing left queued) if it is full, 400 if the
        request alone holds more rows than the engine ever lets wait (a retry could never succeed)."""
        limit = self.lm.engine.max_waiting_rows
        if self.choices > limit:
            raise APIError(400, f"n: {len(self.requests)} prompts x n={self.n} = {self.choices} completions in one "
                                f"request; this server takes at most {limit}", param="n")
        try:
            for request in self.requests:
                self.lm.engine.submit(request)
        except EngineOverloaded as exc:
            self.cancel()
            raise APIError(503, f"{exc}; retry later", code="overloaded") from None

    def cancel(self) -> None:
        for request in self.requests:
            request.cancelled = True

    async def batches(self) -> AsyncIterator[list[Piece]]:
        """Every chunk of every choice, in the order the engine made them, until all have finished: as
        many as have arrived at each wake-up, consecutive chunks of one choice merged into one (a
        client that falls behind gets fewer, longer events rather than a growing backlog)."""
        left = self.choices
        while left:
            arrived = [await self.queue.get()]
            while not self.queue.empty():
                arrived.append(self.queue.get_nowait())
            batch: list[Piece] = []
            for index, payload in arrived:
                if isinstance(payload, EngineFailure):
                    raise APIError(500, payload.message)
                for chunk in payload:
                    if chunk.finish_reason is not None:
                        left -= 1
                        self.completion_tokens += chunk.completion_tokens
                    piece = Piece(index * self.n + chunk.choice, chunk)
                    last = next((p for p in reversed(batch) if p.index == piece.index), None)
                    if last is not None and last.chunk.finish_reason is None:
                        last.chunk = merged(last.chunk, chunk)
                    else:
                        batch.append(piece)
            yield batch

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}
