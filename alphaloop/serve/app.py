"""The server: one FastAPI app for every served model, run by uvicorn.

`build_app(lms, games)` wires the OpenAI endpoints (`openai_api`), the game endpoints (`games`), the
error handlers (`errors`), the web app (`web`) and its runs API over `runs_dir` (`runs`), and starts
one batching engine per language model (`engine`) when the app starts, stopping them when it stops.
`serve(...)` is `alphaloop serve`: load the arguments, bind the socket (so a port in use is a one-line
error before anything else runs), run until Ctrl-C.

`GET /health` answers 200 while the server runs (as vLLM's does), `GET /stats` says how much batching
the engines do; `/docs` and `/openapi.json` are FastAPI's interactive documentation and schema.
"""

from __future__ import annotations

import logging
import socket
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from alphaloop.errors import UserError
from alphaloop.serve import games as games_api
from alphaloop.serve import openai_api, runs, web
from alphaloop.serve.engine import Engine
from alphaloop.serve.errors import APIError, install
from alphaloop.serve.models import ServedGame, ServedLM, load_served

MAX_BODY = 1 << 20   # bytes: the largest prompt fits many times over; a bigger body is a mistake or an attack


class BodyLimit:
    """413 for a request whose Content-Length exceeds MAX_BODY. Plain ASGI rather than FastAPI's
    `@app.middleware("http")`, which routes every chunk of a streamed response through a queue and a
    task switch of its own (measured: a third of the throughput of a token-by-token stream)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            for name, value in scope.get("headers", ()):
                if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                    error = APIError(413, f"the request body is {value.decode(errors='replace')} bytes; at most "
                                          f"{MAX_BODY} are accepted")
                    await error.response()(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def attach_engines(lms: dict[str, ServedLM], max_rows: int = 256) -> None:
    """Give every served LM its batching engine (not started)."""
    for lm in lms.values():
        if lm.engine is None:
            lm.engine = Engine(lm.policy, lm.context, name=lm.id, max_rows=max_rows)


def build_app(lms: dict[str, ServedLM], games: dict[str, ServedGame], max_rows: int = 256,
              runs_dir: Path | None = None) -> FastAPI:
    """The app serving `lms` (OpenAI endpoints), `games` (game endpoints), the web app, and the runs under
    `runs_dir` (none: the Runs page says how to name a directory)."""
    attach_engines(lms, max_rows)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for lm in lms.values():
            lm.engine.start()
        try:
            yield
        finally:
            for lm in lms.values():
                lm.engine.stop()

    app = FastAPI(title="alphaloop", version="1", lifespan=lifespan,
                  description="alphaloop's trained policies behind OpenAI's API, and its game agents.")
    app.state.lms, app.state.games, app.state.runs_dir = lms, games, runs_dir
    install(app)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "models": sorted(lms), "games": sorted(games)}

    @app.get("/stats")
    async def stats() -> dict:
        """Per language model: decoding steps, rows admitted, admission rounds, cache rebuilds, and the
        mean number of rows sampled per step over the last 1000 steps (how much batching happens)."""
        return {lm.id: lm.engine.stats.summary(lm.engine.decoder.rebuilds) for lm in lms.values()}

    app.include_router(openai_api.router)
    app.include_router(games_api.router)
    app.include_router(runs.router)
    app.include_router(web.router)
    app.add_middleware(BodyLimit)
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; UserError (a port in use, an address not of this machine) before
    anything is served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Connections inherit it: each streamed token leaves at once instead of waiting for the client's
    # delayed ACK of the previous write (Nagle's algorithm; measured 40 ms before the first token).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}); "
                        "pick another --port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(targets: list[str], host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          announce=print, runs_dir: Path | None = None, access_log: bool = False) -> None:
    """`alphaloop serve`: load `targets`, listen on host:port, answer until interrupted; the web app's
    Runs page shows the runs under `runs_dir`. `access_log` logs one line per request; it is off by default
    because under load formatting and writing those lines is a measurable share of the event loop's time
    (docs/serving.md, "Measured": about a tenth of the throughput at 64 streaming clients)."""
    import uvicorn

    lms, games = load_served(targets)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    for lm in lms.values():
        announce(f"model {lm.id}: {lm.policy_dir} (env {lm.env or 'unknown'}, context {lm.context}, chat template "
                 f"{lm.template.name})")
    for agent in games.values():
        announce(f"game agent {agent.id}: {agent.net_dir} ({agent.game})")
    if runs_dir is not None:
        announce(f"runs: {runs_dir}")
    announce(f"serving on http://{shown}:{sock.getsockname()[1]}/v1  (docs: /docs)")
    announce(f"web app: http://{shown}:{sock.getsockname()[1]}/")
    logging.getLogger("uvicorn.error").setLevel(log_level.upper())
    config = uvicorn.Config(build_app(lms, games, runs_dir=runs_dir), log_level=log_level, timeout_graceful_shutdown=5,
                            access_log=access_log)
    uvicorn.Server(config).run(sockets=[sock])
