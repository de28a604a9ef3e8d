"""The web app in a real browser: Debian's Chromium, headless, driven by Playwright against the test server.

Each test plays its page the way a person would (a whole tic-tac-toe game, a streamed chat reply, the
runs, a run's live curves and its report) and saves a screenshot under its tmp_path. With
ALPHALOOP_SCREENSHOTS=1 the Play and report tests also write docs/images/play.png and report.png, the
images docs/serving.md shows.

Playwright's own browser download is not used (and not available here): the tests launch the system's
Chromium (`make sysdeps` installs it; ALPHALOOP_CHROMIUM names another binary) and skip, saying why, when
it or the playwright package is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("ALPHALOOP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
SCREENSHOTS = os.environ.get("ALPHALOOP_SCREENSHOTS", "") not in ("", "0")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright not installed: {exc} (pip install playwright; the `dev` extra has it)")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"chromium not installed: no {CHROMIUM} (apt-get install chromium, or `make sysdeps`)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1200, "height": 820})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("response", lambda r: problems.append(f"{r.status} from {r.url}") if r.status >= 500 else None)
    # 4xx answers are logged by the browser too ("Failed to load resource"); the tests ask for some on purpose
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    yield page
    context.close()
    assert not problems, problems


def shoot(page, tmp_path: Path, name: str, docs: bool = False) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    if docs and SCREENSHOTS:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / f"{name}.png"), full_page=True)


def test_play_a_whole_game_of_tictactoe(served, page, tmp_path):
    page.goto(f"{served.url}/#/play")
    page.wait_for_selector("#play-agent option[value=ttt]", state="attached")
    page.select_option("#play-agent", "ttt")
    page.fill("#play-simulations", "24")
    page.click("#play-new")
    page.wait_for_selector("#play-board .cell:not([disabled])")
    for _ in range(5):      # tic-tac-toe: at most five moves of ours
        page.click("#play-board .cell:not([disabled])")
        page.wait_for_function("""() => document.querySelector('#play-status').dataset.over === '1' ||
            document.querySelectorAll('#play-board .cell:not([disabled])').length > 0""")
        if page.get_attribute("#play-status", "data-over") == "1":
            break
    status = page.inner_text("#play-status")
    assert status.startswith("Game over"), status
    marks = [cell.inner_text().strip()[:1] for cell in page.query_selector_all("#play-board .cell")]
    assert len(marks) == 9 and marks.count("X") >= 3 and marks.count("X") - marks.count("O") in (0, 1)
    assert len(page.query_selector_all("#play-bars .bar")) == 9         # the agent's visit shares per cell
    assert page.inner_text("#play-value").startswith("value ")
    assert page.query_selector_all(".cell:not([disabled])") == []       # a finished game takes no more moves
    shoot(page, tmp_path, "play", docs=True)

    page.select_option("#play-side", "1")                               # the agent opens the next game
    page.wait_for_function("document.querySelectorAll('#play-board .cell.p0').length === 1")
    assert page.inner_text("#play-status").startswith("The agent played cell")


@pytest.fixture(scope="module")
def connect4_url(tmp_path_factory, serve_app):
    """A second server, playing a tiny random connect-four net (the session's server plays tic-tac-toe)."""
    import torch

    from alphaloop.games.registry import new_game
    from alphaloop.policies.nets import NetConfig, build_net
    from alphaloop.serve.app import build_app
    from alphaloop.serve.models import load_served

    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp", blocks=1, hidden=16), new_game("connect4"))
    lms, games = load_served([f"c4={net.save(tmp_path_factory.mktemp('c4') / 'net')}"])
    with serve_app(build_app(lms, games)) as (url, _):
        yield url


def test_play_a_whole_game_of_connect4(connect4_url, page, tmp_path):
    page.goto(f"{connect4_url}/#/play")
    page.wait_for_selector("#play-agent option[value=c4]", state="attached")
    page.fill("#play-simulations", "8")
    page.select_option("#play-side", "1")                    # the agent (red) opens
    page.wait_for_function("document.querySelectorAll('#play-board .cell.p0').length === 1")
    assert len(page.query_selector_all("#play-board .cell")) == 42
    assert len(page.query_selector_all("#play-bars .bar")) == 7          # visit shares over the columns
    for _ in range(21):
        if page.get_attribute("#play-status", "data-over") == "1":
            break
        column = page.get_attribute("#play-board .cell:not([disabled])", "data-col")
        page.click(f"#play-board .cell[data-row='0'][data-col='{column}']")   # any cell of a column drops there
        page.wait_for_function("""() => document.querySelector('#play-status').dataset.over === '1' ||
            document.querySelectorAll('#play-board .cell:not([disabled])').length > 0""")
    assert page.inner_text("#play-status").startswith("Game over")
    red, yellow = (len(page.query_selector_all(f"#play-board .cell.{p}")) for p in ("p0", "p1"))
    assert red - yellow in (0, 1) and red >= 4
    for column in range(7):         # pieces fall: no empty cell under a piece
        filled = [bool(page.query_selector(f".cell[data-row='{r}'][data-col='{column}'].p0, "
                                           f".cell[data-row='{r}'][data-col='{column}'].p1")) for r in range(6)]
        assert filled == sorted(filled), (column, filled)
    shoot(page, tmp_path, "connect4")


def test_chat_streams_the_reply(served, page, tmp_path, client):
    expected = client.chat.completions.create(model="arith", messages=[{"role": "user", "content": "47+85"}],
                                              temperature=0, max_tokens=40).choices[0].message.content
    page.goto(f"{served.url}/#/chat")
    page.wait_for_selector("#chat-model option[value=arith]", state="attached")
    page.select_option("#chat-model", "arith")
    assert "arithmetic" in page.inner_text("#chat-template")
    page.fill("#chat-temperature", "0")
    page.fill("#chat-max-tokens", "40")
    # Count the reply's text updates: a streamed reply grows piece by piece, a buffered one appears at once.
    # The tiny model makes 40 tokens in milliseconds, so that the browser could read them all in one go the
    # connection is throttled (Chromium's network emulation: the events arrive a few at a time over about a
    # second), and the page must show the reply part-written before it is whole.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": 6000,
                                                  "uploadThroughput": -1})
    page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => {
            const replies = document.querySelectorAll('.msg.assistant .text');
            if (replies.length) window.seen.push(replies[replies.length - 1].textContent.length);
        })
            .observe(document.querySelector('#chat-log'), {subtree: true, childList: true, characterData: true});
    }""")
    # The server merges the tokens that queue up between two wake-ups of its event loop into one event, so
    # an engine that finishes the whole reply before the loop first wakes sends it in one piece: the page
    # then cannot show it part-written. Up to three tries; a page that buffers the stream fails all three.
    partial: set[int] = set()
    for attempt in range(3):
        page.evaluate("() => { window.seen = []; }")
        page.fill("#chat-input", "47+85")
        page.press("#chat-input", "Enter")
        page.wait_for_selector(f".msg.assistant.done >> nth={attempt}")
        assert page.inner_text(f".msg.user .text >> nth={attempt}") == "47+85"
        assert page.inner_text(f".msg.assistant .text >> nth={attempt}") == expected
        partial = {n for n in page.evaluate("window.seen") if 0 < n < len(expected)}
        if partial:
            break
    assert partial, "the reply did not arrive piece by piece"
    assert page.is_hidden("#chat-error")

    page.fill("#chat-input", "hello")         # characters outside the model's alphabet: the API's 400, shown
    page.press("#chat-input", "Enter")
    page.wait_for_selector("#chat-error:not([hidden])")
    assert "hello" in page.inner_text("#chat-error") or "character" in page.inner_text("#chat-error")
    shoot(page, tmp_path, "chat")


@pytest.fixture
def runs_dir(served, tmp_path, run_factory):
    from alphaloop.report import build_report

    root = tmp_path / "runs"
    build_report(run_factory(root / "quickstart", "finished", steps=120))
    run_factory(root / "training", "running", steps=120)
    run_factory(root / "stopped", "crashed")
    served.app.state.runs_dir = root
    yield root
    served.app.state.runs_dir = None


def test_runs_live_curves_and_report(served, page, tmp_path, runs_dir):
    page.goto(f"{served.url}/#/runs")
    page.wait_for_selector("#runs-table tr[data-run=stopped]")
    status = {name: page.inner_text(f"#runs-table tr[data-run={name}] .badge")
              for name in ("quickstart", "training", "stopped")}
    assert status == {"quickstart": "finished", "training": "running", "stopped": "crashed"}
    assert "rl.test_greedy_accuracy 0.97" in page.inner_text("#runs-table tr[data-run=quickstart] td.metrics")
    shoot(page, tmp_path, "runs")

    page.click("#runs-table tr[data-run=training] a")                    # a run in progress: live curves
    page.wait_for_selector("#run-chart svg path[data-stage=imitate]")
    before = int(page.get_attribute("#run-chart", "data-points"))
    log = runs_dir / "training" / "metrics.jsonl"
    with open(log, "a") as handle:
        for step in range(31, 41):
            handle.write(json.dumps({"stage": "rl", "stage_index": 1, "step": step, "loss": 0.05}) + "\n")
    page.wait_for_function(f"Number(document.querySelector('#run-chart').dataset.points) === {before + 10}")
    assert "live" in page.inner_text("#run-live")
    shoot(page, tmp_path, "run-live")

    page.goto(f"{served.url}/#/runs")
    page.click("#runs-table tr[data-run=quickstart] a.report-link")     # the run's own report.html
    page.wait_for_url("**/runs/quickstart/report.html")
    page.wait_for_selector("img")
    assert "quickstart" in page.inner_text("h1")
    assert page.evaluate("[...document.images].every((img) => img.complete && img.naturalWidth > 0)")
    shoot(page, tmp_path, "report", docs=True)
