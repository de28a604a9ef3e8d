"""The batching decode loop: one thread owns a model and decodes every client's rows together.

Requests from any number of clients wait in one queue. The loop (continuous batching, as in Orca,
Yu et al. 2022, and vLLM):

    admit     waiting requests join the running batch: their prompts are prefilled in one forward
              and merged into the batch's KV cache (`policies.stepwise.StepDecoder`), n rows each
    choose    one token for every running row, each with its request's own sampling settings
    deliver   each row's new text (held back where a stop string may be starting) to its client
    advance   one forward of every still-running row's token: the next step's logits

so a new request starts at the next step instead of waiting for the batch to drain, and a decoding
step costs one forward for all clients instead of one each: at this model size a step's time is
mostly per-operation overhead, nearly the same for 1 row as for 64.

Rows that finish stay in the batch, fed padding, until an eighth of the batch has finished or new
rows join: dropping rows copies the cache, so it is done in bursts (as `policies.sampler` does).
The loop never dies of one request: a failure while admitting fails those requests, and a failure in
a step fails the rows then running, with the error, and the loop carries on with the next requests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from alphaloop.policies.stepwise import StepDecoder
from alphaloop.serve.rows import Chunk, Detokenizer, Row, seeded_generator
from alphaloop.serve.sampling import choose


@dataclass(eq=False)
class GenerationRequest:
    """One prompt to complete `n` times. `logprobs` None asks for no log-probs, k >= 0 for the sampled
    tokens' and the k most probable alternatives'. `deliver` receives each step's list of `Chunk`s, or
    once an `EngineFailure`: on the event loop `loop` when one is given (all of a step's deliveries to
    one loop in one call, so a step wakes the loop once, not once per client), else on the engine's
    thread."""

    prompt_ids: list[int]
    max_tokens: int
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None
    ignore_eos: bool = False
    deliver: Callable[[list[Chunk] | EngineFailure], None] = lambda payload: None
    loop: asyncio.AbstractEventLoop | None = None
    cancelled: bool = False     # set by the client side (disconnected); the rows leave at the next step


@dataclass
class EngineFailure:
    """The engine could not finish a request (a bug, or the server shutting down)."""

    message: str


class EngineOverloaded(RuntimeError):
    """More rows are waiting than the engine accepts; the client should retry later."""


@dataclass
class EngineStats:
    """What the loop has done: decoding steps, the number of rows sampled at each recent step, rows
    admitted and admission rounds (for tests, GET /stats and the load benchmark)."""

    steps: int = 0
    tokens: int = 0   # rows sampled, over all steps
    batch_sizes: deque = field(default_factory=lambda: deque(maxlen=100_000))
    rows_admitted: int = 0
    admissions: int = 0

    def summary(self, rebuilds: int) -> dict:
        recent = list(self.batch_sizes)[-1000:]
        return {"steps": self.steps, "tokens": self.tokens, "rows_admitted": self.rows_admitted,
                "admissions": self.admissions, "cache_rebuilds": rebuilds,
                "mean_batch_last_1000_steps": sum(recent) / len(recent) if recent else 0.0}


class Engine:
    """Continuous batching over one LM policy (see the module docstring); `submit` from any thread."""

    def __init__(self, policy, context: int, name: str = "model", max_rows: int = 256, max_waiting_rows: int = 4096,
                 admit_every: int = 4, seed: int = 0) -> None:
        self.policy = policy
        self.admit_every = admit_every
        self._admitted_at = 0   # the step of the last admission
        self.name = name
        self.max_rows = max_rows
        self.max_waiting_rows = max_waiting_rows
        self.decoder = StepDecoder(policy, context)
        self.detokenizer = Detokenizer(policy.tokenizer)
        self.shared = torch.Generator().manual_seed(seed)   # draws of the rows without a seed
        self.stats = EngineStats()
        self.rows: list[Row] = []
        self.owners: list[GenerationRequest] = []
        self.samplers: list[tuple[float, float, int, torch.Generator | None]] = []
        self._waiting: deque[GenerationRequest] = deque()
        self._waiting_rows = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f"alphaloop-engine-{name}", daemon=True)

    # -- the client side ------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def submit(self, request: GenerationRequest) -> None:
        """Queue `request`; EngineOverloaded if too many rows already wait."""
        with self._cond:
            if self._stopping:
                raise EngineOverloaded(f"model {self.name!r} is shutting down")
            if self._waiting_rows + request.n > self.max_waiting_rows:
                raise EngineOverloaded(f"model {self.name!r} has {self._waiting_rows} rows waiting already")
            self._waiting.append(request)
            self._waiting_rows += request.n
            self._cond.notify()

    # -- the loop -------------------------------------------------------------------------
    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while not self._waiting and not self.rows and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
                new = self._take()
            try:
                if new:
                    self._admit(new)
                if self.rows:
                    self._step()
            except Exception as exc:  # noqa: BLE001 -- the loop outlives any one failure
                self._fail_running(f"internal error while decoding: {type(exc).__name__}: {exc}", also=new)
        with self._cond:
            left, self._waiting = list(self._waiting), deque()
        self._send([(request, EngineFailure("the server is shutting down"))
                    for request in left + list(dict.fromkeys(self.owners))])

    def _take(self) -> list[GenerationRequest]:
        """Waiting requests that fit beside the running rows (at least one when nothing runs), if it is
        time to admit: into an empty batch at once; else when waiting rows reach an eighth of the running
        ones, or `admit_every` steps after the last admission. Each admission costs a prefill forward and
        a copy of the running cache, so under a steady stream of requests (one finishing and one arriving
        at nearly every step) admitting every step would about triple the cost of a step; a request waits
        at most `admit_every` steps (a few milliseconds) instead."""
        running = sum(1 for row in self.rows if row.finish_reason is None)
        if running and 8 * self._waiting_rows < running and self.stats.steps - self._admitted_at < self.admit_every:
            return []
        self._admitted_at = self.stats.steps
        taken: list[GenerationRequest] = []
        room = self.max_rows - running
        while self._waiting and (self._waiting[0].n <= room or not (taken or self.rows)):
            request = self._waiting.popleft()
            self._waiting_rows -= request.n
            room -= request.n
            taken.append(request)
        return taken

    def _running(self) -> list[int]:
        return [i for i, (row, owner) in enumerate(zip(self.rows, self.owners))
                if row.finish_reason is None and not owner.cancelled]

    def _admit(self, requests: list[GenerationRequest]) -> None:
        """Prefill the new requests' rows and merge them into the batch (dropping finished rows)."""
        requests = [r for r in requests if not r.cancelled]
        if not requests:
            return
        eos = self.policy.eos_id
        rows, owners, samplers = [], [], []
        for request in requests:
            for choice in range(request.n):
                rows.append(Row(choice, request.max_tokens, request.stop, None if request.ignore_eos else eos,
                                request.logprobs is not None, self.detokenizer))
                owners.append(request)
                generator = None if request.seed is None else seeded_generator(request.seed, choice)
                # top_k is any non-negative integer (OpenAI's and vLLM's rule); one past int64 would fail the
                # step's tensor, and with it every row in the batch. Any k of at least the vocabulary is no
                # truncation, so clamping changes nothing.
                top_k = min(max(request.top_k, 0), 2**31 - 1)
                samplers.append((request.temperature, request.top_p, top_k, generator))
        keep = self._running()
        try:
            self.decoder.add([o.prompt_ids for o in owners], [o.max_tokens - 1 for o in owners], keep=keep)
        except Exception as exc:  # noqa: BLE001 -- these requests fail, the running ones go on
            failure = EngineFailure(f"internal error while reading the prompt: {type(exc).__name__}: {exc}")
            self._send([(request, failure) for request in requests])
            return
        self.rows = [self.rows[i] for i in keep] + rows
        self.owners = [self.owners[i] for i in keep] + owners
        self.samplers = [self.samplers[i] for i in keep] + samplers
        self.stats.rows_admitted += len(rows)
        self.stats.admissions += 1

    def _step(self) -> None:
        """Choose every row's next token, deliver the new text, and advance the rows still running."""
        rows, owners = self.rows, self.owners
        temperature, top_p, top_k, generators = zip(*self.samplers)
        top_n = max((o.logprobs or 0 for o in owners), default=0)
        with torch.inference_mode():
            chosen = choose(self.decoder.logits, torch.tensor(temperature), torch.tensor(top_p), torch.tensor(top_k),
                            list(generators), self.shared, top_n)
        tokens, logprobs = chosen.tokens.tolist(), chosen.logprobs.tolist()
        tops = (chosen.top_ids.tolist(), chosen.top_logprobs.tolist()) if top_n else None
        names = self.detokenizer.names
        out: dict[int, tuple[GenerationRequest, list[Chunk]]] = {}
        sampled = 0
        for i, (row, owner) in enumerate(zip(rows, owners)):
            if row.finish_reason is not None or owner.cancelled:
                continue
            sampled += 1
            top = None
            if tops is not None and owner.logprobs:
                top = [(names[t], lp) for t, lp in zip(tops[0][i][:owner.logprobs], tops[1][i][:owner.logprobs])]
            chunk = row.push(tokens[i], logprobs[i], top)
            if chunk is not None:
                out.setdefault(id(owner), (owner, []))[1].append(chunk)
        self._send(list(out.values()))
        self.stats.steps += 1
        self.stats.batch_sizes.append(sampled)
        self.stats.tokens += sampled
        running = self._running()
        if not running:
            self._keep([])
            return
        if 8 * (len(rows) - len(running)) >= len(rows):
            self._keep(running)
            tokens = [tokens[i] for i in running]
        else:
            pad = self.policy.pad_id
            alive = set(running)
            tokens = [t if i in alive else pad for i, t in enumerate(tokens)]
        self.decoder.advance(torch.tensor(tokens))

    @staticmethod
    def _send(items: list[tuple[GenerationRequest, list[Chunk] | EngineFailure]]) -> None:
        """Hand each request its payload: one call onto each event loop for all of its requests."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for request, payload in items:
            if request.loop is None:
                request.deliver(payload)
            else:
                by_loop.setdefault(request.loop, []).append((request, payload))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver_all, pairs)
            except RuntimeError:   # that loop is closed: its clients are gone
                pass

    def _keep(self, index: list[int]) -> None:
        self.decoder.keep(index)
        self.rows = [self.rows[i] for i in index]
        self.owners = [self.owners[i] for i in index]
        self.samplers = [self.samplers[i] for i in index]

    def _fail_running(self, message: str, also: list[GenerationRequest] = ()) -> None:
        """Fail every request with rows in the batch (and `also`, taken from the queue but perhaps not
        admitted) and start over with an empty batch."""
        failed = dict.fromkeys(list(self.owners) + list(also))
        self._send([(owner, EngineFailure(message)) for owner in failed])
        self.rows, self.owners, self.samplers = [], [], []
        self.decoder = StepDecoder(self.policy, self.decoder.context)
        time.sleep(0.01)   # a failure that repeats at every step must not spin a core


def _deliver_all(pairs: list[tuple[GenerationRequest, list[Chunk] | EngineFailure]]) -> None:
    for request, payload in pairs:
        request.deliver(payload)
