"""A server for the tests of `alphaloop serve`: tiny models built in seconds, uvicorn on a free loopback port.

The server runs in a thread of the test process (so tests can read the engines' counters), bound to a
socket on port 0 (the kernel picks a free port; no race with other tests). Served:

* `arith`: a run directory (recipe.toml, stages/0-imitate/policy) with a random 2-layer Llama over the
  arithmetic env's alphabet; its untied output layer is scaled up so that its greedy text is not one
  character repeated, and the special tokens' logits are pushed down so texts run to max_tokens;
* `gpt`: a tiny random GPT-2 policy directory (the path without our KV cache);
* `ttt`: a tiny random tic-tac-toe net.
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """The running server: `url`, `base` (the /v1 URL for openai clients), `lms`, `games`."""
    import uvicorn

    from alphaloop.policies.lm import build_tiny_hf_model
    from alphaloop.serve.app import bind, build_app
    from alphaloop.serve.models import load_served

    root = tmp_path_factory.mktemp("serve")
    run = make_lm_run(root / "arith")
    gpt = build_tiny_hf_model(root / "gpt", alphabet=ALPHABET)
    net = make_net(root / "ttt-net")
    lms, games = load_served([str(run), f"gpt={gpt}", f"ttt={net}"])
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(lms, games, max_rows=64), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "the test server did not start"
    url = f"http://127.0.0.1:{port}"
    yield SimpleNamespace(url=url, base=f"{url}/v1", lms=lms, games=games, run=run, gpt=gpt, net=net)
    server.should_exit = True
    thread.join(15)


@pytest.fixture(scope="session")
def client(served):
    import openai

    return openai.OpenAI(base_url=served.base, api_key="unused", max_retries=0, timeout=30)
