"""The report builds from synthetic run directories: complete, without metrics, and crashed part-way."""

import json
import re

import pytest
from rich.console import Console

from alphaloop.report import build_report, format_report_card
from alphaloop.report.html import format_value

SUMMARY = {
    "name": "quickstart", "seed": 0, "status": "complete", "wall_time_s": 312.5, "env": "arithmetic",
    "policy": {"kind": "lm", "num_parameters": 853120},
    "stages": [{"index": 0, "kind": "imitate", "name": "imitate", "status": "complete", "steps": 1500,
                "wall_time_s": 120.1, "final": {"loss": 0.12}},
               {"index": 1, "kind": "eval", "name": "eval", "status": "complete"}],
    "evals": [
        {"stage": "imitate", "step": 20, "policy": "imitate", "split": "test", "decoder": "greedy",
         "metrics": {"accuracy": 0.61, "n": 100}},
        {"stage": "eval", "step": None, "policy": "imitate", "split": "test", "decoder": "greedy",
         "metrics": {"accuracy": 0.835, "n": 500}},
        {"stage": "eval", "step": None, "policy": "imitate", "split": "test", "decoder": "pass@8",
         "metrics": {"accuracy": 0.99, "pass@1": 0.8, "pass@8": 0.99, "n": 500}},
        {"stage": "eval", "step": None, "policy": "<b>expert</b>", "split": "test", "decoder": "oracle@4",
         "metrics": {"accuracy": 0.996, "n": 500}},
    ],
    "curves": {"test_time_compute": [
        {"policy": "rl", "split": "test", "decoder": d, "k": k, "accuracy": a}
        for d, pts in (("maj", ((1, 0.9), (2, 0.91), (4, 0.93), (8, 0.94))),
                       ("pass", ((1, 0.9), (2, 0.95), (4, 0.97), (8, 0.99))))
        for k, a in pts]},
    "elo": {"random": 0.0, "mcts-64": 812.4, "alphazero": 1290.0},
}


def metrics_lines():
    lines = []
    for step in range(1, 41):
        lines.append({"stage": "imitate", "stage_index": 0, "step": step, "time_s": 0.1 * step,
                      "loss": 3.0 / step, "lr": 1e-3, "tokens_per_s": 5000.0 + step})
        if step % 20 == 0:
            lines.append({"stage": "imitate", "stage_index": 0, "step": step, "time_s": 0.1 * step,
                          "kind": "eval", "split": "test", "decoder": "greedy", "accuracy": step / 50})
    return [json.dumps(line) for line in lines]


def make_run(tmp_path, summary=SUMMARY, metrics=True, name="run"):
    run_dir = tmp_path / name
    run_dir.mkdir()
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    if metrics:
        (run_dir / "metrics.jsonl").write_text("\n".join(metrics_lines()) + "\n")
    (run_dir / "recipe.toml").write_text('name = "quickstart"\n')
    return run_dir


def test_full_report(tmp_path):
    run_dir = make_run(tmp_path)
    page_path = build_report(run_dir)
    assert page_path == run_dir / "report.html"
    page = page_path.read_text()
    assert "<h1>quickstart</h1>" in page and "complete" in page and "5 min 12 s" in page and "853K" in page
    assert "83.5%" in page and "99.0%" in page and "80.0%" in page  # accuracy, pass@8, pass@1 as percentages
    assert "correct if any of 8 samples is" in page
    assert "upper bound: uses the answer key" in page
    assert "&lt;b&gt;expert&lt;/b&gt;" in page and "<b>expert</b>" not in page  # text is escaped
    assert "[98.6%-99.9%]" in page  # Wilson interval of the oracle's 498 / 500
    # and for the in-training 61 / 100; none for 0.835 * 500 (not a count) nor pass@8 (not a binomial count)
    assert page.count('class="ci"') == 2
    imgs = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', page)
    assert len(imgs) == 3  # learning curves, test-time compute, Elo
    assert "Test-time compute" in page and "<h2>Elo</h2>" in page and '<td class="num">1290</td>' in page
    assert "evaluations during training (1)" in page
    plots = sorted(p.name for p in (run_dir / "plots").iterdir())
    assert plots == ["curve-test_time_compute.png", "curves-0-imitate.png", "elo.png"]
    assert "Incomplete run directory" not in page


def test_report_is_deterministic(tmp_path):
    first = build_report(make_run(tmp_path, name="a")).read_text()
    first_png = (tmp_path / "a" / "plots" / "curves-0-imitate.png").read_bytes()
    second = build_report(make_run(tmp_path, name="b")).read_text()
    assert (tmp_path / "b" / "plots" / "curves-0-imitate.png").read_bytes() == first_png
    assert first == second


def test_report_without_metrics(tmp_path):
    run_dir = make_run(tmp_path, metrics=False)
    page = build_report(run_dir).read_text()
    assert "metrics.jsonl not found" in page and "83.5%" in page
    assert not (run_dir / "plots" / "curves-0-imitate.png").exists()
    assert page.count("<img") == 2  # test-time compute and Elo still drawn


def test_report_of_a_crashed_run(tmp_path):
    run_dir = make_run(tmp_path, summary=None)
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"stage": "imitate", "step": 41, "lo')  # cut short by kill -9
    page = build_report(run_dir).read_text()
    assert "summary.json not found" in page and "skipped 1 unreadable line" in page
    assert "no final evaluation" in page and page.count("<img") == 1  # learning curves still drawn
    assert "<h1>run</h1>" in page and "unknown" in page


@pytest.mark.parametrize("summary", [
    {"name": "half", "status": "incomplete",
     "stages": [{"index": 0, "kind": "imitate", "name": "imitate", "status": "pending"}],
     "evals": [{"policy": "x"}, "junk", {"metrics": {"accuracy": 0.5}}],
     "curves": {"test_time_compute": "junk"},
     "elo": {"a": "not a number"}},
    [1, 2, 3],
])
def test_report_of_malformed_summary_does_not_raise(tmp_path, summary):
    page = build_report(make_run(tmp_path, summary=summary)).read_text()
    assert "<html" in page and "</html>" in page
    if isinstance(summary, list):
        assert "does not hold a JSON object" in page
    else:
        assert "pending" in page and "no plottable points" in page and "50.0%" in page


def test_truncated_summary_json(tmp_path):
    run_dir = make_run(tmp_path, summary=None)
    (run_dir / "summary.json").write_text('{"name": "x", "sta')
    page = build_report(run_dir).read_text()
    assert "summary.json is not valid JSON" in page


def render(table):
    console = Console(record=True, width=160)
    console.print(table)
    return console.export_text()


def test_format_report_card():
    text = render(format_report_card(SUMMARY))
    assert "quickstart complete" in text
    for needle in ("83.5%", "99.0%", "80.0%", "pass@8", "oracle@4", "500",
                   "upper bound: uses the answer key"):
        assert needle in text, needle
    assert "61.0%" not in text  # the in-training eval is not part of the final card


def test_format_report_card_falls_back_to_training_evals():
    summary = {"evals": SUMMARY["evals"][:1]}
    text = render(format_report_card(summary))
    assert "61.0%" in text and "latest evaluations during training" in text
    assert "no evaluations" in render(format_report_card({}))


def test_format_value_rates_and_numbers():
    assert format_value("accuracy", 0.835) == "83.5%"
    assert format_value("pass@16", 1.0) == "100.0%"
    assert format_value("learning_rate", 0.001) == "0.001"  # a rate by name, not a fraction
    assert format_value("loss", 0.123456) == "0.1235"
    assert format_value("n", 500) == "500" and format_value("tokens", 1234567) == "1,234,567"


GAME_EVALS = [
    {"stage": "game_eval", "step": None, "policy": "alphazero", "split": "vs-alphabeta@4", "decoder": "mcts@800",
     "metrics": {"win_rate": 0.92, "draw_rate": 0.03, "loss_rate": 0.05, "score": 0.945, "n": 200,
                 "win_low": 0.874, "win_high": 0.95}},
    {"stage": "game_eval", "step": None, "policy": "alphazero", "split": "positions-middle-late",
     "decoder": "mcts@800", "metrics": {"good_move_rate": 0.974, "perfect_move_rate": 0.75, "n": 500}},
    {"stage": "game_eval", "step": None, "policy": "random", "split": "positions-middle-late",
     "decoder": "expected", "metrics": {"good_move_rate": 0.708, "perfect_move_rate": 0.269, "n": 500}},
    {"stage": "game_eval", "step": None, "policy": "alphazero", "split": "perfect-lines", "decoder": "raw",
     "metrics": {"lost_lines_as_first": 0, "lost_lines_as_second": 2, "lines": 143}},
]


def test_game_report_card_fits_80_columns_with_one_number_format(tmp_path):
    """Matches, positions and perfect lines get a table each, the key figure first (win rate with its
    interval; good-move rate), every rate a percentage, nothing cut to an ellipsis at 80 columns."""
    console = Console(record=True, width=80)
    console.print(format_report_card({"name": "connect4", "status": "complete", "evals": GAME_EVALS}))
    text = console.export_text()
    assert "…" not in text
    for needle in ("opponent", "alphabeta@4", "92.0%", "[87.4%-95.0%]", "5.0%", "good move", "97.4%", "75.0%",
                   "middle-late", "lost as second", "143"):
        assert needle in text, needle
    assert "0.75" not in text and "0.945" not in text        # no fraction beside a percentage
    header = next(line for line in text.splitlines() if "opponent" in line)
    assert header.index("win") < header.index("draw") < header.index("loss")
    page = build_report(make_run(tmp_path, summary={"name": "c4", "evals": GAME_EVALS})).read_text()
    assert "matches (both colours)" in page and "solver-labelled positions" in page and "97.4%" in page
    assert ">0.75<" not in page
