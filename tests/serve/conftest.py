"""A server for the tests of `alphaloop serve`: tiny models built in seconds, uvicorn on a free loopback port.

The server runs in a thread of the test process (so tests can read the engines' counters), bound to a
socket on port 0 (the kernel picks a free port; no race with other tests). Served:

* `arith`: a run directory (recipe.toml, stages/0-imitate/policy) with a random 2-layer Llama over the
  arithmetic env's alphabet; its untied output layer is scaled up so that its greedy text is not one
  character repeated, and the special tokens' logits are pushed down so texts run to max_tokens;
* `gpt`: a tiny random GPT-2 policy directory (the path without our KV cache);
* `ttt`: a tiny random tic-tac-toe net.

`write_run` (fixture `run_factory`) makes the run directories the web app's Runs page reads: finished,
running (stopped mid-stage, files just written) or crashed (the same, written an hour ago).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ALPHABET = "0123456789+-*=> "


def make_lm_run(run: Path, seed: int = 0) -> Path:
    """A run directory as the runner leaves it, holding a random arithmetic policy of 160 positions."""
    from alphaloop.policies.arch import LMArch
    from alphaloop.policies.lm import LMPolicy

    policy = LMPolicy.build(LMArch(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64,
                                   max_seq_len=160, tie_embeddings=False), ALPHABET, seed)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        head = policy.model.lm_head.weight
        head.copy_(0.4 * torch.randn(head.shape, generator=generator))
        head[:4] *= 0.05   # the special tokens (pad, bos, eos, unk) are rarely likely: texts run to max_tokens
    stage = run / "stages" / "0-imitate"
    policy.save(stage / "policy")
    (stage / "result.json").write_text(json.dumps({"kind": "imitate", "policy_dir": "stages/0-imitate/policy"}))
    (run / "recipe.toml").write_text('name = "arith"\n[env]\nname = "arithmetic"\n[policy]\nkind = "lm"\n')
    return run


def make_net(directory: Path) -> Path:
    from alphaloop.games.registry import new_game
    from alphaloop.policies.nets import NetConfig, build_net

    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp", blocks=1, hidden=16), new_game("tictactoe"))
    return net.save(directory)


def write_run(run: Path, status: str = "finished", steps: int = 60) -> Path:
    """A run directory as the runner leaves it: recipe.toml, metrics.jsonl with imitate, rl and eval records,
    stages/<i>-<name>/result.json per finished stage, and summary.json once every stage has finished.
    `status`: finished; running (stopped during the rl stage, its files just written); crashed (the same,
    last written an hour ago)."""
    run.mkdir(parents=True, exist_ok=True)
    (run / "recipe.toml").write_text(f'name = "{run.name}-recipe"\nseed = 0\n[env]\nname = "arithmetic"\n'
                                     f'[[stages]]\nkind = "imitate"\nname = "imitate"\nsteps = {steps}\n'
                                     f'[[stages]]\nkind = "rl"\nname = "rl"\nsteps = {steps // 2}\n'
                                     '[[stages]]\nkind = "eval"\nname = "eval"\n')
    done = status == "finished"
    rl_steps = steps // 2 if done else steps // 4
    records, evals = [], []
    for step in range(1, steps + 1):
        records.append({"stage": "imitate", "stage_index": 0, "step": step, "time_s": step * 0.1, "lr": 0.003,
                        "loss": round(2.8 * math.exp(-step / (steps / 4)) + 0.05 * math.sin(step), 5)})
        if step % (steps // 3) == 0:
            evals.append({"stage": "imitate", "policy": "imitate", "step": step, "split": "test", "decoder": "greedy",
                          "metrics": {"accuracy": round(0.9 * step / steps, 3), "n": 200}})
    for step in range(1, rl_steps + 1):
        records.append({"stage": "rl", "stage_index": 1, "step": step, "time_s": 10 + step * 0.2,
                        "loss": round(0.1 * math.exp(-step / 20) + 0.01 * math.sin(step / 2), 5),
                        "reward_mean": round(0.8 + 0.15 * step / rl_steps, 4)})
    records += [{"kind": "eval", "stage": e["stage"], "stage_index": 0, "step": e["step"], "split": e["split"],
                 "decoder": e["decoder"], "accuracy": e["metrics"]["accuracy"]} for e in evals]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    finals = {"imitate": {"loss_ema": 0.07, "test_greedy_accuracy": 0.9}, "rl": {"test_greedy_accuracy": 0.97}}
    final_eval = {"evals": [{"stage": "eval", "policy": "rl", "step": steps // 2, "split": "test", "decoder": "greedy",
                             "metrics": {"accuracy": 0.97, "n": 200}}]}
    stages = []
    for index, (name, kind) in enumerate([("imitate", "imitate"), ("rl", "rl"), ("eval", "eval")]):
        finished = done or index == 0
        entry = {"index": index, "kind": kind, "name": name, "status": "complete" if finished else "pending"}
        if finished:
            result = {"kind": kind} | ({"steps": steps if index == 0 else steps // 2, "final": finals[name],
                                        "evals": evals if index == 0 else []} if name in finals else final_eval)
            (run / "stages" / f"{index}-{name}").mkdir(parents=True, exist_ok=True)
            (run / "stages" / f"{index}-{name}" / "result.json").write_text(json.dumps(result))
            entry |= {k: v for k, v in result.items() if k in ("steps", "final")}
        stages.append(entry)
    if done:
        summary = {"name": f"{run.name}-recipe", "seed": 0, "threads": 1, "env": "arithmetic", "status": "complete",
                   "stages": stages, "evals": evals + final_eval["evals"], "curves": {}}
        (run / "summary.json").write_text(json.dumps(summary, indent=2))
    if status == "crashed":
        old = time.time() - 3600
        for path in [run / "metrics.jsonl", run / "recipe.toml", *run.glob("stages/*/result.json")]:
            os.utime(path, (old, old))
    return run


@pytest.fixture(scope="session")
def run_factory():
    return write_run


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The running server: `url`, `base` (the /v1 URL for openai clients), `lms`, `games`."""
    from alphaloop.policies.lm import build_tiny_hf_model
    from alphaloop.serve.app import build_app
    from alphaloop.serve.models import load_served

    root = tmp_path_factory.mktemp("serve")
    run = make_lm_run(root / "arith")
    gpt = build_tiny_hf_model(root / "gpt", alphabet=ALPHABET)
    net = make_net(root / "ttt-net")
    lms, games = load_served([str(run), f"gpt={gpt}", f"ttt={net}"])
    with running(build_app(lms, games, max_rows=64)) as (url, server):
        yield SimpleNamespace(url=url, base=f"{url}/v1", lms=lms, games=games, run=run, gpt=gpt, net=net,
                              app=server.config.app)


@pytest.fixture(scope="session")
def serve_app():
    """`running` for a test module that needs a server of its own."""
    return running


@contextlib.contextmanager
def running(app):
    """Serve `app` on a free loopback port from a daemon thread: yields (its URL, the uvicorn server)
    once it is up, and stops it after."""
    import uvicorn

    from alphaloop.serve.app import bind

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "the test server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(15)


@pytest.fixture(scope="session")
def client(served):
    import openai

    return openai.OpenAI(base_url=served.base, api_key="unused", max_retries=0, timeout=30)
