"""Game progress series: stitched wall time, series from metrics.jsonl + summary.json, compare errors."""

from __future__ import annotations

import json

import pytest

from alphaloop.errors import UserError
from alphaloop.report.games import compare_runs, game_progress, progress_figure, run_time


def test_run_time_keeps_increasing_across_a_resume():
    records = [{"time_s": 1.0}, {"time_s": 5.0}, {"step": 3}, {"time_s": 0.5}, {"time_s": 2.0}]
    times = run_time(records)
    assert times[:2] == [1.0, 5.0] and times[3:] == [5.5, 7.0]


def _eval(stage, step, t, games, split="positions-endgame", decoder="raw", rate=0.5):
    return {"kind": "eval", "stage": stage, "step": step, "time_s": t, "selfplay_games": games, "split": split,
            "decoder": decoder, "good_move_rate": rate}


def test_series_join_ladder_elo_to_the_eval_of_its_step(tmp_path):
    metrics = [_eval("imitate", 10, 3.0, 0, rate=0.6), {"stage": "alphazero", "step": 1, "time_s": 4.0, "loss": 1},
               _eval("alphazero", 2, 9.0, 64, rate=0.7), _eval("alphazero", 2, 9.0, 64, split="vs-random")]
    summary = {"evals": [
        {"split": "elo", "stage": "alphazero", "step": 2, "policy": "alphazero@2", "decoder": "raw",
         "metrics": {"elo": 300.0, "elo_low": 250.0, "elo_high": 350.0}},
        {"split": "elo", "stage": "game_eval", "step": None, "policy": "random", "decoder": "-",
         "metrics": {"elo": 0.0}}]}
    progress = game_progress("run", summary, metrics)
    assert [(p.time_s, p.selfplay_games, p.value) for p in progress.good[("endgame", "raw")]] == [
        (3.0, 0, 0.6), (9.0, 64, 0.7)]
    (point,) = progress.elo["raw"]
    assert (point.time_s, point.selfplay_games, point.value, point.low, point.high) == (9.0, 64, 300.0, 250.0, 350.0)
    assert progress_figure([progress], tmp_path / "p.png", "run").is_file()
    empty = game_progress("none", {}, [])
    assert empty.empty() and progress_figure([empty], tmp_path / "q.png", "none") is None


def test_compare_needs_runs_with_game_series(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"name": name, "evals": []}))
    with pytest.raises(UserError, match="no good-move rates or Elo ladder"):
        compare_runs(tmp_path / "a", tmp_path / "b", tmp_path / "out")
    (tmp_path / "a" / "summary.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        compare_runs(tmp_path / "a", tmp_path / "b", tmp_path / "out")


def test_accuracy_against_time_lines_up_stages_from_their_own_start():
    from alphaloop.report.games import accuracy_against_time

    def ev(index, stage, t, accuracy, split="test"):
        return {"stage_index": index, "stage": stage, "kind": "eval", "split": split, "decoder": "greedy",
                "time_s": t, "accuracy": accuracy}

    metrics = [{"stage_index": 0, "stage": "imitate", "step": 1, "time_s": 1.0}, ev(0, "imitate", 5.0, 0.8),
               {"stage_index": 1, "stage": "ei", "step": 1, "time_s": 10.0}, ev(1, "ei", 12.0, 0.9),
               ev(1, "ei", 15.0, 0.95), ev(1, "ei", 15.5, 0.1, split="heldout"),
               {"stage_index": 2, "stage": "grpo", "step": 1, "time_s": 20.0}, ev(2, "grpo", 22.0, 0.85),
               ev(2, "grpo", 1.0, 0.97)]   # a resume: the clock restarts, run_time keeps it increasing
    points = accuracy_against_time(metrics)
    assert [(p["stage"], p["stage_seconds"], p["test_greedy_accuracy"]) for p in points] == [
        ("ei", 2.0, 0.9), ("ei", 5.0, 0.95), ("grpo", 2.0, 0.85), ("grpo", 3.0, 0.97)]   # imitate: one eval
    assert accuracy_against_time(metrics[:6]) == []   # one stage alone is no comparison
