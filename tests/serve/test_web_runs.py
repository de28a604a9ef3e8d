"""The runs API behind the Runs page, over hand-made run directories: the status rule, key metrics, the
metrics feed for live curves, the read-only files, and refusals (unknown runs, path traversal, broken
files) as clean 4xx answers in the API's error shape, never a 500."""

from __future__ import annotations

import json
import os
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from alphaloop.serve.app import build_app  # noqa: E402
from alphaloop.serve.runs import RECENT_S, run_status  # noqa: E402


@pytest.fixture
def runs(tmp_path, run_factory):
    root = tmp_path / "runs"
    run_factory(root / "done", "finished")
    run_factory(root / "live", "running")
    run_factory(root / "dead", "crashed")
    broken = run_factory(root / "broken", "finished")
    (broken / "summary.json").write_text('{"status": "complete", "stages": [')
    (root / "done" / "report.html").write_text("<html><title>done report</title><body>report</body></html>")
    (root / "done" / "plots").mkdir()
    (root / "done" / "plots" / "curves-0-imitate.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "not-a-run").mkdir()                       # no recipe, summary or log: not listed
    (tmp_path / "secret.txt").write_text("outside the runs directory")
    return root


@pytest.fixture
def api(runs):
    with TestClient(build_app({}, {}, runs_dir=runs)) as client:
        yield client


def by_name(api) -> dict[str, dict]:
    answer = api.get("/api/runs")
    assert answer.status_code == 200
    return {run["name"]: run for run in answer.json()["data"]}


def assert_error(answer, status: int) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def test_list_runs_with_status_stages_and_key_metrics(api, runs):
    listed = by_name(api)
    assert set(listed) == {"done", "live", "dead", "broken"}
    assert {name: run["status"] for name, run in listed.items()} == {
        "done": "finished", "live": "running", "dead": "crashed", "broken": "crashed"}
    done = listed["done"]
    assert done["recipe"] == "done-recipe" and done["env"] == "arithmetic"
    assert [(s["name"], s["status"]) for s in done["stages"]] == [("imitate", "complete"), ("rl", "complete"),
                                                                  ("eval", "complete")]
    assert done["key_metrics"]["rl.test_greedy_accuracy"] == 0.97
    assert done["key_metrics"]["eval.test.greedy.accuracy"] == 0.97
    assert done["report"] == "/runs/done/report.html"
    live = listed["live"]       # no summary.json yet: stages from the recipe and the finished stages' results
    assert [(s["name"], s["status"]) for s in live["stages"]] == [("imitate", "complete"), ("rl", "pending"),
                                                                  ("eval", "pending")]
    assert live["key_metrics"]["imitate.test_greedy_accuracy"] == 0.9 and live["report"] is None
    assert "summary.json is unreadable" in listed["broken"]["notes"][0]


def test_status_rule(runs):
    done, live = runs / "done", runs / "live"
    summary = json.loads((done / "summary.json").read_text())
    assert run_status(done, summary) == "finished"
    assert run_status(live, None) == "running"
    assert run_status(live, None, now=time.time() + RECENT_S + 1) == "crashed"
    later = (done / "summary.json").stat().st_mtime + 60        # a finished run resumed: its log grows again
    os.utime(done / "metrics.jsonl", (later, later))
    assert run_status(done, summary, now=later + 1) == "running"
    assert run_status(done, summary, now=later + RECENT_S + 1) == "crashed"


def test_one_run_and_unknown_runs(api):
    run = api.get("/api/runs/done").json()
    assert run["plots"] == ["/runs/done/plots/curves-0-imitate.png"] and run["evals"] and run["metrics_bytes"] > 0
    for name in ("nope", "not-a-run", ".hidden", "%2e%2e"):
        error = assert_error(api.get(f"/api/runs/{name}"), 404)
        assert error["code"] == "run_not_found", name
    for path in ("/api/runs/..", "/api/runs/..%2F..%2Fetc", "/api/runs/..%2Fruns%2Fdone/metrics"):
        assert_error(api.get(path), 404)       # dots resolved, or a slash in the name: no such route
    assert_error(api.get("/api/runs/nope/metrics"), 404)
    assert_error(api.get("/api/runs/done/metrics?since=-1"), 400)


def test_metrics_feed_is_incremental(api, runs):
    log = runs / "live" / "metrics.jsonl"
    first = api.get("/api/runs/live/metrics").json()
    lines = log.read_text().splitlines()
    assert len(first["data"]) == len(lines) and first["next"] == log.stat().st_size and not first["reset"]
    with open(log, "a") as handle:     # one new record and half of the next one, as a running run leaves it
        handle.write(json.dumps({"stage": "rl", "step": 99, "loss": 0.01}) + "\n" + '{"stage": "rl", "st')
    more = api.get(f"/api/runs/live/metrics?since={first['next']}&file={first['file']}").json()
    assert [r["step"] for r in more["data"]] == [99] and more["next"] < log.stat().st_size
    with open(log, "a") as handle:
        handle.write('ep": 100}\nnot json\n')
    rest = api.get(f"/api/runs/live/metrics?since={more['next']}&file={more['file']}").json()
    assert [r["step"] for r in rest["data"]] == [100] and rest["skipped"] == 1
    log.write_text(json.dumps({"stage": "imitate", "step": 1, "loss": 3.0}) + "\n")   # rewritten (a resume)
    again = api.get(f"/api/runs/live/metrics?since={rest['next']}&file={rest['file']}").json()
    assert again["reset"] and [r["step"] for r in again["data"]] == [1]
    os.unlink(log)
    gone = api.get(f"/api/runs/live/metrics?since={again['next']}").json()
    assert gone["data"] == [] and gone["reset"] and gone["next"] == 0


def test_report_and_plots_served_read_only(api):
    page = api.get("/runs/done/report.html")
    assert page.status_code == 200 and "done report" in page.text and page.headers["content-type"].startswith(
        "text/html")
    plot = api.get("/runs/done/plots/curves-0-imitate.png")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert api.get("/runs/done/summary.json").json()["status"] == "complete"
    assert_error(api.get("/runs/live/report.html"), 404)      # no report yet
    assert_error(api.post("/runs/done/report.html"), 405)


@pytest.mark.parametrize("path", [
    "/runs/done/../secret.txt", "/runs/done/%2e%2e/secret.txt", "/runs/done/plots/..%2F..%2F..%2Fsecret.txt",
    "/runs/done/plots/%2e%2e/recipe.toml", "/runs/done/stages/0-imitate/result.json", "/runs/..%2Fsecret.txt/x",
    "/runs/%2e%2e/secret.txt", "/runs/done/%2Fetc%2Fpasswd", "/runs/done/plots/..%5C..%5Csecret.txt",
    "/web/..%2Fruns.py", "/web/%2e%2e%2fapp.py",
    # names the filesystem refuses (a NUL byte, a name over NAME_MAX) are unknown names, not 500s
    "/runs/done/plots/%00.png", "/runs/done/plots/" + "a" * 300 + ".png", "/runs/" + "a" * 300 + "/report.html",
    "/api/runs/" + "a" * 300, "/api/runs/" + "a" * 300 + "/metrics", "/api/runs/a%00b",
])
def test_path_traversal_refused(api, path):
    answer = api.get(path)
    assert answer.status_code == 404, (path, answer.status_code, answer.text[:200])
    assert "outside the runs directory" not in answer.text and "error" in answer.json()


def test_link_out_of_the_run_refused(api, runs, tmp_path):
    (runs / "done" / "plots" / "leak.png").symlink_to(tmp_path / "secret.txt")
    assert_error(api.get("/runs/done/plots/leak.png"), 404)


def test_no_runs_directory(tmp_path):
    with TestClient(build_app({}, {}, runs_dir=None)) as client:
        answer = client.get("/api/runs").json()
        assert answer["root"] is None and answer["data"] == []
        assert "--runs" in assert_error(client.get("/api/runs/x"), 404)["message"]


def test_web_app_files_served(api):
    page = api.get("/")
    assert page.status_code == 200 and "<title>alphaloop</title>" in page.text
    for name, kind in [("app.js", "text/javascript"), ("chat.js", "text/javascript"), ("play.js", "text/javascript"),
                       ("runs.js", "text/javascript"), ("style.css", "text/css")]:
        answer = api.get(f"/web/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), name
    assert_error(api.get("/web/nothing.js"), 404)
    assert "/" not in api.get("/openapi.json").json()["paths"]


def test_the_command_serves_the_web_app_and_the_runs(served, tmp_path, run_factory):
    """`alphaloop serve RUN` from a directory holding runs/ shows those runs (the --runs default);
    a --runs that is not a directory is a one-line error."""
    import re
    import signal
    import subprocess
    import sys

    import httpx

    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "alphaloop.cli", "serve", str(served.run)]
    bad = subprocess.run([*command, "--runs", str(tmp_path / "nowhere")], capture_output=True, text=True, env=env,
                         timeout=120)
    assert bad.returncode == 2 and "--runs" in bad.stderr and "not a directory" in bad.stderr
    assert "Traceback" not in bad.stderr
    run_factory(tmp_path / "runs" / "mine", "finished")
    proc = subprocess.Popen([*command, "--port", "0"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        url, lines = None, []
        deadline = time.time() + 120
        while url is None and time.time() < deadline:
            line = proc.stderr.readline()
            assert line, f"the server exited early: {lines}"
            lines.append(line)
            found = re.search(r"web app: (http://\S+/)", line)
            url = found.group(1) if found else None
        assert f"runs: {(tmp_path / 'runs').resolve()}\n" in lines, lines
        assert "<title>alphaloop</title>" in httpx.get(url, timeout=30).text
        listed = httpx.get(f"{url}api/runs", timeout=30).json()
        assert [run["name"] for run in listed["data"]] == ["mine"] and listed["data"][0]["status"] == "finished"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
