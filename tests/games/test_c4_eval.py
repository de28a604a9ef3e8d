"""Connect-four evaluation end to end: position sets in training and in game_eval, snapshots, the Elo
ladder, the progress plots, `alphaloop compare` and `alphaloop positions`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from game_helpers import independent_argmax

from alphaloop import runner
from alphaloop.errors import UserError
from alphaloop.games.connect4 import Connect4State
from alphaloop.games.solver import bitbully_available
from alphaloop.policies.nets import PolicyValueNet
from alphaloop.recipe import load_recipe
from alphaloop.seeding import derive_seed

pytestmark = pytest.mark.skipif(not bitbully_available(), reason="bitbully is not installed")

RECIPE = """
name = "c4-eval-tiny"
seed = 0
threads = 1
[env]
name = "connect4"
[policy]
kind = "net"
[policy.net]
kind = "resnet"
channels = 8
blocks = 1
hidden = 16
inference = "float32"
[[stages]]
kind = "game_imitate"
depth = 2
games = 6
steps = 6
batch_size = 32
eval_every = 3
checkpoint_every = 3
eval_games = 2
eval_sims = [0]
opponents = ["random"]
position_sets = ["endgame", "middle-soon"]
position_count = 10
position_sims = [0, 4]
snapshots = true
[[stages]]
kind = "alphazero"
rounds = 2
games_per_round = 3
simulations = 4
train_steps = 3
batch_size = 32
eval_every = 1
checkpoint_every = 1
eval_games = 2
eval_sims = [0]
opponents = ["random"]
position_sets = ["endgame", "middle-soon"]
position_count = 10
snapshots = true
[[stages]]
kind = "game_eval"
eval_games = 2
eval_sims = [0]
opponents = ["random"]
position_sets = ["endgame", "middle-soon"]
position_count = 10
position_baselines = ["random", "uct@20"]
ladder = true
ladder_depth = 1
ladder_games = 2
elo_bootstrap = 20
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("c4eval")
    (base / "recipe.toml").write_text(RECIPE)
    recipe = load_recipe(base / "recipe.toml")
    run_dir = runner.prepare_run_dir(recipe, base / "run")
    return runner.run(recipe, run_dir, show_progress=False), run_dir


def test_position_rates_in_training_and_final(run):
    summary, run_dir = run
    records = [r for r in summary["evals"] if r["split"].startswith("positions-")]
    during = {(r["stage"], r["step"], r["split"], r["decoder"]) for r in records if r["step"] is not None}
    assert ("game_imitate", 3, "positions-endgame", "mcts@4") in during
    assert ("alphazero", 2, "positions-middle-soon", "raw") in during
    final = {(r["policy"], r["split"], r["decoder"]) for r in records if r["step"] is None}
    assert final == {(p, s, d) for s in ("positions-endgame", "positions-middle-soon")
                     for p, d in (("alphazero", "raw"), ("random", "expected"), ("uct", "uct@20"))}
    for r in records:
        m = r["metrics"]
        assert m["n"] == 10 and 0 <= m["perfect_move_rate"] <= m["good_move_rate"] <= 1
    # every stage rates the same held-out positions, generated once from the recipe seed
    assert sorted(p.name for p in (run_dir / "positions").iterdir()) == sorted(
        f"{k}-10-seed{derive_seed(0, 'positions') % 2**31}.txt{s}" for k in ("endgame", "middle-soon")
        for s in ("", ".move-scores"))
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    games = {(r["stage"], r["step"]): r["selfplay_games"] for r in logged if r.get("kind") == "eval"}
    assert games[("game_imitate", 6)] == 0 and games[("alphazero", 1)] == 3 and games[("alphazero", 2)] == 6
    # The final net's raw good-move rate, recomputed without the evaluator, the position-set code or
    # move_quality: the forward's masked argmax, judged by the sidecar's solver scores directly.
    net = PolicyValueNet.load(run_dir / summary["stages"][1]["policy_dir"])
    seed = derive_seed(0, "positions") % 2**31
    for kind in ("endgame", "middle-soon"):
        path = run_dir / "positions" / f"{kind}-10-seed{seed}.txt.move-scores"
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        states = [Connect4State.from_moves(row[0]) for row in rows]
        scores = [[None if v in ("-", "None") else int(v) for v in row[1:]] for row in rows]
        moves = independent_argmax(net, states)
        sign = [(lambda v: (v > 0) - (v < 0))(max(v for v in r if v is not None)) for r in scores]
        good = sum((r[m] > 0) - (r[m] < 0) == b for r, m, b in zip(scores, moves, sign)) / len(rows)
        assert summary["stages"][1]["final"][f"positions-{kind}/raw/good_move_rate"] == pytest.approx(good)
        final = next(r for r in summary["evals"] if r["step"] is None and r["policy"] == "alphazero"
                     and r["split"] == f"positions-{kind}" and r["decoder"] == "raw")
        assert final["metrics"]["good_move_rate"] == pytest.approx(good)


def test_snapshots_and_ladder(run):
    summary, run_dir = run
    snaps = sorted(p.name for p in (run_dir / "stages" / "1-alphazero" / "snapshots").iterdir())
    assert snaps == ["step-0000001", "step-0000002"]
    ladder = {r["policy"]: r for r in summary["evals"] if r["split"] == "elo"}
    assert set(ladder) == {"game_imitate@3", "game_imitate@6", "alphazero@1", "alphazero@2", "alphazero",
                           "random", "alphabeta@1"}
    assert (ladder["alphazero@2"]["stage"], ladder["alphazero@2"]["step"]) == ("alphazero", 2)
    for r in ladder.values():
        m = r["metrics"]
        assert m["elo_low"] <= m["elo"] <= m["elo_high"] and m["games"] >= 12   # 6 opponents x 2 games
        assert summary["elo"][r["policy"] + ("" if r["decoder"] == "-" else ":" + r["decoder"])] == m["elo"]
    assert summary["elo"]["random"] == 0.0


def test_report_and_compare(run, tmp_path):
    from alphaloop.report import build_report
    from alphaloop.report.games import compare_runs, read_run

    _, run_dir = run
    page = build_report(run_dir).read_text()
    assert "Game progress" in page and (run_dir / "plots" / "game-progress.png").is_file()
    assert "95% interval" in page
    progress = read_run(run_dir)
    assert set(progress.good) == {(s, d) for s in ("endgame", "middle-soon") for d in ("raw", "mcts@4")}
    assert [p.selfplay_games for p in progress.elo["raw"]] == [0, 0, 3, 6]
    out = compare_runs(run_dir, run_dir, tmp_path / "cmp")
    assert out.name == "compare.html" and (tmp_path / "cmp" / "compare.png").is_file()
    assert "c4-eval-tiny (A)" in out.read_text()


def test_position_sets_need_connect4(repo_root, tmp_path):
    # found when the recipe loads, before any stage trains
    with pytest.raises(UserError, match="stages.0.position_sets: solver-labelled positions exist for connect4 only"):
        load_recipe(f"{repo_root}/recipes/tictactoe-smoke.toml", ["stages.0.position_sets=['endgame']"])
    with pytest.raises(UserError, match="neither a kind"):
        load_recipe(f"{repo_root}/recipes/tictactoe-smoke.toml", ["stages.2.position_sets=['midgame']"])
    with pytest.raises(UserError, match="uct@N"):
        load_recipe(f"{repo_root}/recipes/tictactoe-smoke.toml", ["stages.2.position_baselines=['uct']"])


def cli(*args):
    return subprocess.run([sys.executable, "-m", "alphaloop.cli", *args], capture_output=True, text=True)


def test_positions_command(tmp_path):
    from alphaloop.games.positions import load_move_scores, load_positions, matches, move_scores_path

    out = tmp_path / "sets" / "end.txt"
    result = cli("positions", "connect4", "--kind", "endgame", "--count", "5", "--seed", "2", "--out", str(out),
                 "--no-progress")
    assert result.returncode == 0, result.stderr
    items = load_positions(out)
    assert len(items) == 5 and all(matches("endgame", m, s) for m, s in items)
    assert [m for m, _ in load_move_scores(move_scores_path(out))] == [m for m, _ in items]
    assert "wrote 5 endgame positions" in result.stderr


@pytest.mark.parametrize("args, needle", [
    (["positions", "connect4", "--kind", "midgame", "--out", "x.txt"], "--kind 'midgame': expected one of"),
    (["positions", "tictactoe", "--kind", "endgame", "--out", "x.txt"], "connect4 only"),
    (["positions", "connect4", "--kind", "endgame", "--count", "0", "--out", "x.txt"], "--count"),
    (["compare", "nowhere", "nowhere", "--out", "x"], "no summary.json"),
])
def test_cli_mistakes_are_clear(args, needle):
    result = cli(*args)
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr


def test_missing_solver_says_how_to_install(monkeypatch, tmp_path):
    from alphaloop import cli_positions
    from alphaloop.games import solver

    monkeypatch.setattr(solver, "bitbully_available", lambda: False)
    with pytest.raises(UserError, match="pip install bitbully"):
        cli_positions.positions_command("connect4", "endgame", 5, 0, tmp_path / "x.txt", show_progress=False)
