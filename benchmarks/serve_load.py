"""Load on `alphaloop serve`: N concurrent streaming clients against one server, beside one at a time.

The server runs as `alphaloop serve` in its own process (so the clients' Python does not compete with
it for the interpreter), on a free loopback port. Each level of `--clients` sends `--requests`
streaming /v1/completions requests, or runs for `--duration` seconds (the issue's load test: 200
clients for a bounded time), every client sending its next one as soon as its last finished;
every request generates exactly `--tokens` tokens (`ignore_eos`), at temperature 1, from a quickstart
prompt (a 1-3 digit addition), so each level does the same work. Printed per level: requests/s,
generated tokens/s, request latency p50/p99, time to the first token p50, errors, the throughput
relative to one client at a time (the first level, 1, is the sequential baseline), the mean number
of rows the engine sampled per decoding step (from the server's GET /stats), and the machine's load
average as the level ended (other work on the machine moves these figures).

Each client holds one keep-alive connection and reads its stream as raw bytes (`RawConnection`): the
clients share the machine's cores with the server, and a heavier client measures itself. `--httpx`
drives the same requests through httpx instead (the client this benchmark used first), for comparison.

The policy: `--policy DIR` (a run, policy or checkpoint directory), else a random Llama of the
quickstart's size (4 layers, width 128, ~0.85M parameters) saved to a temporary directory. With a
fixed number of tokens the weights do not change the cost of a step, so no training is needed.

    .venv/bin/python benchmarks/serve_load.py [--clients 1 8 32] [--requests 64 | --duration S] [--tokens 32]
                                              [--threads 1] [--policy DIR] [--engine] [--httpx]
    .venv/bin/python benchmarks/serve_load.py --clients 1 8 64 200 --duration 10   # the load test

`--engine` also drives the same levels against the batching engine in this process, without HTTP:
the difference between the two tables is what the HTTP layer (and the clients' own Python, which
shares the machine) costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, quickstart  # noqa: E402


def random_quickstart_policy(directory: Path) -> Path:
    from alphaloop.envs import make_env
    from alphaloop.policies.arch import LMArch
    from alphaloop.policies.lm import LMPolicy

    q = quickstart()
    env = make_env(q.env["name"], **q.env.get("knobs", {}))
    LMPolicy.build(LMArch(**q.arch), env.alphabet, seed=0).save(directory)
    return directory


def start_server(policy: Path, threads: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.Popen([sys.executable, "-m", "alphaloop.cli", "serve", f"bench={policy}", "--port", "0",
                             "--threads", str(threads)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, env=env)
    deadline = time.time() + 180
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"the server exited (code {proc.wait()})")
        found = re.search(r"serving on (http://\S+)/v1", line)
        if found:
            # Keep reading the server's log, so that it never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, found.group(1)
    raise SystemExit("the server did not start within 180 s")


def request_body(prompt: str, tokens: int) -> dict:
    return {"model": "bench", "prompt": prompt, "max_tokens": tokens, "temperature": 1.0, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}


def last_event(tail: bytes) -> int:
    """The completion tokens from a stream's usage chunk (its last event before [DONE]); RuntimeError for a
    stream that does not end with [DONE] or ends with an error event."""
    if not tail.endswith(b"data: [DONE]\n\n"):
        raise RuntimeError(f"the stream ended without [DONE]: {tail[-200:]!r}")
    last = tail.rsplit(b"data: {", 1)[-1].split(b"\n\n", 1)[0]
    chunk = json.loads(b"{" + last)
    if "error" in chunk:
        raise RuntimeError(chunk["error"]["message"])
    return chunk["usage"]["completion_tokens"]


async def one_request(client, prompt: str, tokens: int) -> tuple[float, float, int]:
    """(latency, time to first token, tokens generated) of one streamed completion through httpx."""
    start = time.perf_counter()
    first, tail = None, b""
    async with client.stream("POST", "/v1/completions", json=request_body(prompt, tokens)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        # The clients share the machine with the server, so they are kept light: the stream is read as raw
        # bytes and only its last event (the usage chunk, or an error) is parsed.
        async for data in response.aiter_raw():
            if first is None:
                first = time.perf_counter() - start
            tail = (tail + data)[-4096:]
    end = time.perf_counter() - start
    return end, first if first is not None else float("nan"), last_event(tail)


class RawConnection(asyncio.Protocol):
    """One client's keep-alive HTTP/1.1 connection, reading a response as it arrives without parsing it:
    the bytes are kept, and the response is complete when a chunked body's last chunk (or a
    Content-Length body's last byte) is in. The chunked framing is taken apart once, at the end.

    Why not httpx: on this 2-core machine the clients and the server share the cores, and httpx spends
    about 7 ms of CPU on each 32-token streamed request (its HTTP parser and connection pool, per chunk
    and per request), as much as the server's engine; this client spends a fraction of a millisecond, so
    the table measures the server rather than the load generator (`--httpx` still measures with httpx)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.first: float | None = None
        self.done: asyncio.Future | None = None
        self.length: int | None = None   # None: not known yet; -1: chunked; else the body's length
        self.header_end = -1

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError(f"the server closed the connection ({exc})"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.length is None:
            self.header_end = self.buffer.find(b"\r\n\r\n")
            if self.header_end < 0:
                return
            head = bytes(self.buffer[:self.header_end]).lower()
            found = re.search(rb"content-length: *(\d+)", head)
            self.length = int(found.group(1)) if found else -1
        if self.first is None and len(self.buffer) > self.header_end + 4:   # the body's first bytes, not the headers
            self.first = time.perf_counter()
        if (self.buffer.endswith(b"\r\n0\r\n\r\n") if self.length < 0 else
                len(self.buffer) >= self.header_end + 4 + self.length) and not self.done.done():
            self.done.set_result(None)

    async def post(self, url: str, path: str, body: bytes) -> tuple[int, bytes, float, float]:
        """(status, body, latency, time to the first byte) of one POST."""
        if self.transport is None:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            await asyncio.get_running_loop().create_connection(lambda: self, host, int(port))
        self.buffer.clear()
        self.first, self.length = None, None
        self.done = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        self.transport.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.done
        end = time.perf_counter()
        status = int(self.buffer[9:12])
        body = bytes(self.buffer[self.header_end + 4:])
        if self.length < 0:   # take the chunked framing apart: size line, data, CRLF, ..., 0
            parts, at = [], 0
            while True:
                eol = body.index(b"\r\n", at)
                size = int(body[at:eol], 16)
                if size == 0:
                    break
                parts.append(body[eol + 2:eol + 2 + size])
                at = eol + 4 + size
            body = b"".join(parts)
        return status, body, end - start, self.first - start


async def one_raw_request(connection: RawConnection, url: str, prompt: str, tokens: int) -> tuple[float, float, int]:
    """(latency, time to first token, tokens generated) of one streamed completion through `connection`."""
    status, body, latency, first = await connection.post(url, "/v1/completions",
                                                         json.dumps(request_body(prompt, tokens)).encode())
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
    return latency, first, last_event(body[-4096:])


async def drive(new_sender, clients: int, requests: int, seed: int,
                duration: float | None = None) -> tuple[list, list, float]:
    """`clients` closed-loop clients, each sending prompts through its own `new_sender()(prompt)`: `requests`
    of them between them, or, with `duration`, as many as they start in that many seconds (each finishes the
    one it started). Returns (results, errors, wall seconds)."""
    rng = random.Random(seed)
    results, errors = [], []
    start = time.perf_counter()
    deadline = start + duration if duration is not None else float("inf")
    left = [requests if duration is None else 1 << 62]

    async def worker() -> None:
        send = new_sender()
        while left[0] > 0 and time.perf_counter() < deadline:
            left[0] -= 1
            prompt = f"{rng.randint(0, 999)}+{rng.randint(0, 999)}="
            try:
                results.append(await send(prompt))
            except Exception as exc:  # noqa: BLE001 -- counted and shown
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(clients)))
    return results, errors, time.perf_counter() - start


async def level(url: str, clients: int, requests: int, tokens: int, seed: int, duration: float | None = None,
                use_httpx: bool = False) -> dict:
    """One concurrency level over HTTP: each client on its own keep-alive connection (`RawConnection`), or
    all of them through one httpx client."""
    import httpx

    connections: list[RawConnection] = []

    def raw_sender():
        connections.append(RawConnection())
        return lambda prompt, connection=connections[-1]: one_raw_request(connection, url, prompt, tokens)

    # Idle connections expire before the server's keep-alive timeout (uvicorn's 5 s): with the same 5 s on
    # both sides a client now and then reuses a connection just as the server closes it (a ReadError).
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await one_request(client, "1+1=", 4)   # connection and server warm-up
        before = (await client.get("/stats")).json()["bench"]
        new_sender = (lambda: lambda p: one_request(client, p, tokens)) if use_httpx else raw_sender
        results, errors, wall = await drive(new_sender, clients, requests, seed, duration)
        after = (await client.get("/stats")).json()["bench"]
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()
    return summarize(clients, results, errors, wall, before, after)


async def engine_level(engine, clients: int, requests: int, tokens: int, seed: int,
                       duration: float | None = None) -> dict:
    """One concurrency level against the engine in this process: the same requests without HTTP."""
    from alphaloop.serve.engine import EngineFailure, GenerationRequest

    loop = asyncio.get_running_loop()

    async def send(prompt: str) -> tuple[float, float, int]:
        queue: asyncio.Queue = asyncio.Queue()
        start = time.perf_counter()
        engine.submit(GenerationRequest(engine.policy.prompt_ids(prompt), tokens, ignore_eos=True,
                                        deliver=queue.put_nowait, loop=loop))
        first = None
        while True:
            payload = await queue.get()
            if isinstance(payload, EngineFailure):
                raise RuntimeError(payload.message)
            first = first if first is not None else time.perf_counter() - start
            if any(chunk.finish_reason for chunk in payload):
                return time.perf_counter() - start, first, payload[-1].completion_tokens

    await send("1+1=")
    before = engine.stats.summary(engine.decoder.rebuilds)
    results, errors, wall = await drive(lambda: send, clients, requests, seed, duration)
    return summarize(clients, results, errors, wall, before, engine.stats.summary(engine.decoder.rebuilds))


def quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summarize(clients: int, results: list, errors: list, wall: float, before: dict, after: dict) -> dict:
    latencies = sorted(r[0] for r in results)
    generated = sum(r[2] for r in results)
    return {"clients": clients, "requests": len(results), "errors": len(errors), "first_error": errors[:1],
            "wall_s": wall, "requests_per_s": len(results) / wall, "tokens_per_s": generated / wall,
            "p50_s": statistics.median(latencies) if latencies else float("nan"),
            "p95_s": quantile(latencies, 0.95), "p99_s": quantile(latencies, 0.99),
            "ttft_p50_s": statistics.median(r[1] for r in results) if results else float("nan"),
            "mean_batch": (after["tokens"] - before["tokens"]) / max(1, after["steps"] - before["steps"]),
            "rebuilds": after["cache_rebuilds"] - before["cache_rebuilds"],
            "load": os.getloadavg()[0]}   # the machine's 1-minute load average as the level ended


def print_table(title: str, rows: list[dict]) -> None:
    print(title)
    print(f"{'clients':>7} {'requests':>8} {'req/s':>7} {'tokens/s':>9} {'p50 s':>7} {'p99 s':>7} {'ttft p50':>9} "
          f"{'errors':>6} {'x 1 client':>10} {'rows/step':>9} {'load':>5}")
    base = rows[0]["tokens_per_s"]
    for r in rows:
        print(f"{r['clients']:>7} {r['requests']:>8} {r['requests_per_s']:>7.1f} {r['tokens_per_s']:>9.0f} "
              f"{r['p50_s']:>7.3f} {r['p99_s']:>7.3f} {r['ttft_p50_s']:>9.3f} {r['errors']:>6} "
              f"{r['tokens_per_s'] / base:>9.1f}x "
              f"{r['mean_batch']:>9.1f} {r['load']:>5.1f}")
        if r["first_error"]:
            print(f"        first error: {r['first_error'][0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrency levels (1 first)")
    parser.add_argument("--requests", type=int, default=64, help="requests per level")
    parser.add_argument("--duration", type=float, default=None,
                        help="run each level this many seconds instead of --requests requests")
    parser.add_argument("--tokens", type=int, default=32, help="tokens generated per request")
    parser.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    parser.add_argument("--policy", type=Path, default=None, help="a run, policy or checkpoint directory")
    parser.add_argument("--engine", action="store_true", help="also drive the engine in-process, without HTTP")
    parser.add_argument("--httpx", action="store_true", help="clients through httpx instead of raw connections "
                                                             "(heavier: measures the clients as much as the server)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy or random_quickstart_policy(Path(tmp) / "policy")
        proc, url = start_server(policy, args.threads)
        try:
            rows = [asyncio.run(level(url, c, args.requests, args.tokens, seed=i, duration=args.duration,
                                      use_httpx=args.httpx))
                    for i, c in enumerate(args.clients)]
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
        engine_rows = []
        if args.engine:
            import torch

            from alphaloop.serve.engine import Engine
            from alphaloop.serve.models import load_served

            torch.set_num_threads(args.threads)
            lm = load_served([f"bench={policy}"])[0]["bench"]
            engine = Engine(lm.policy, lm.context, name="bench")
            engine.start()
            try:
                engine_rows = [asyncio.run(engine_level(engine, c, args.requests, args.tokens, seed=i,
                                                        duration=args.duration))
                               for i, c in enumerate(args.clients)]
            finally:
                engine.stop()
    per_level = f"{args.duration:g} s" if args.duration is not None else f"{args.requests} streamed requests"
    print(f"policy: {args.policy or 'random quickstart-size Llama'}; {per_level} per level, "
          f"{args.tokens} tokens each, server threads {args.threads}, {'httpx' if args.httpx else 'raw'} clients")
    print_table("over HTTP (alphaloop serve in its own process, streaming /v1/completions):", rows)
    if engine_rows:
        print_table("the engine alone (in this process, no HTTP):", engine_rows)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()},
                                         "levels": rows, "engine_levels": engine_rows}, indent=1))


if __name__ == "__main__":
    main()
