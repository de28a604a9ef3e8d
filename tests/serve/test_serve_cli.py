"""`alphaloop serve` arguments: model ids, and one-line errors (exit code 2, no traceback) for bad ones."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from alphaloop.errors import UserError
from alphaloop.serve.models import load_served, resolve


@pytest.fixture(scope="module")
def run(served):
    """The served run, with a checkpoint beside its final policy."""
    import shutil

    checkpoint = served.run / "stages" / "0-imitate" / "checkpoints" / "step-0000010"
    if not checkpoint.exists():
        shutil.copytree(served.run / "stages" / "0-imitate" / "policy", checkpoint / "policy")
    return served.run


def test_model_ids_say_what_is_served(run, served):
    assert resolve(str(run)).id == "arith"
    assert resolve(str(run / "stages" / "0-imitate" / "policy")).id == "arith/imitate"
    assert resolve(str(run / "stages" / "0-imitate")).id == "arith/imitate"
    checkpoint = resolve(str(run / "stages" / "0-imitate" / "checkpoints" / "step-0000010"))
    assert checkpoint.id == "arith/imitate/step-0000010" and checkpoint.directory.name == "policy"
    assert checkpoint.env == "arithmetic"
    assert resolve(f"mine={run}").id == "mine"
    assert resolve(str(served.gpt)).id == "gpt" and resolve(str(served.gpt)).env is None
    assert resolve(str(served.net)).kind == "net"


def test_bad_arguments_are_named(run, tmp_path):
    cases = [
        ([str(tmp_path / "missing")], "no such directory"),
        ([str(run / "recipe.toml")], "expected a directory"),
        ([str(tmp_path)], "not a run directory (recipe.toml), a policy directory"),
        ([f"bad name={run}"], "the model name 'bad name'"),
        ([str(run), str(run)], "would both be model 'arith': name one of them with NAME=PATH"),
        ([], "give at least one"),
    ]
    for args, words in cases:
        with pytest.raises(UserError, match=re.escape(words)):
            load_served(args)
    unfinished = tmp_path / "unfinished"
    (unfinished / "stages" / "0-imitate" / "checkpoints" / "step-0000005").mkdir(parents=True)
    (unfinished / "recipe.toml").write_text('[env]\nname = "arithmetic"\n')
    with pytest.raises(UserError, match="no stage of this run has finished.*a checkpoint instead, e.g. .*step-0+5"):
        load_served([str(unfinished)])
    broken = tmp_path / "broken"
    (broken / "stages" / "0-imitate").mkdir(parents=True)
    (broken / "recipe.toml").write_text("[env\n")
    with pytest.raises(UserError, match="recipe.toml cannot be read"):
        load_served([str(broken)])
    (broken / "recipe.toml").write_text('[env]\nname = "arithmetic"\n')
    (broken / "stages" / "0-imitate" / "result.json").write_text(json.dumps({"policy_dir": "stages/0-imitate/policy"}))
    with pytest.raises(UserError, match="holds no config.json"):
        load_served([str(broken)])


def alphaloop(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "alphaloop.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kwargs)


def test_the_command_serves_until_interrupted_and_refuses_bad_arguments(run, tmp_path):
    import httpx

    bad = alphaloop("serve", str(tmp_path / "nowhere"))
    _, err = bad.communicate(timeout=120)
    assert bad.returncode == 2 and err.strip() == f"error: {tmp_path / 'nowhere'}: no such directory"

    proc = alphaloop("serve", str(run), "--port", "0")
    try:
        url = None
        deadline = time.time() + 120
        while url is None and time.time() < deadline:
            line = proc.stderr.readline()
            assert line, "the server exited early"
            found = re.search(r"serving on (http://\S+/v1)", line)
            url = found.group(1) if found else None
        assert url is not None
        out = httpx.post(f"{url}/completions", json={"model": "arith", "prompt": "1=", "max_tokens": 2}, timeout=30)
        assert out.status_code == 200 and out.json()["usage"]["prompt_tokens"] == 3
        port = url.split(":")[-1].split("/")[0]
        taken = alphaloop("serve", str(run), "--port", port)
        _, err = taken.communicate(timeout=120)
        assert taken.returncode == 2 and f"--port {port}: cannot listen there" in err and "Traceback" not in err
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err
    assert "POST /v1/completions" not in err   # no access log unless asked for: it costs the event loop under load
