"""Good/perfect-move rates on position sets: caching, the raw net and search choosers, baselines."""

from __future__ import annotations

import pytest
import torch
from game_helpers import independent_argmax

from alphaloop.evals import positions as pe
from alphaloop.evals.positions import PositionSet, net_moves, position_set, random_position_records
from alphaloop.games.connect4 import Connect4State
from alphaloop.games.positions import load_positions, move_scores_path, save_move_scores, save_positions
from alphaloop.games.solver import bitbully_available
from alphaloop.policies.nets import NetConfig, build_net
from alphaloop.search.players import NetPlayer

needs_bitbully = pytest.mark.skipif(not bitbully_available(), reason="bitbully is not installed")
MOVES = ["4", "4455", "1234567", "44444", "3344", "12121"]


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_net(NetConfig(kind="resnet", channels=8, blocks=1, hidden=16), Connect4State).eval()


def test_random_baseline_is_the_exact_expectation():
    won = [None, 3, 1, -2, None, 0, 3]      # 5 legal: 3 keep the win, 2 are best
    lost = [-5, -1, -3, None, None, None, None]
    (record,) = random_position_records([PositionSet("hand", ["1", "2"], [won, lost])])
    assert record["policy"] == "random" and record["split"] == "positions-hand" and record["decoder"] == "expected"
    assert record["metrics"] == {"good_move_rate": 0.8, "perfect_move_rate": round((2 / 5 + 1 / 3) / 2, 6), "n": 2}


def test_raw_net_moves_are_the_nets_own_argmax():
    """Checked against the training forward's masked argmax, computed without the evaluator."""
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="resnet", channels=8, blocks=1, hidden=16, inference="float32"),
                    Connect4State).eval()
    states = [Connect4State.from_moves(m) for m in MOVES]
    assert net_moves(net, states, 0, seed=0) == independent_argmax(net, states)
    assert NetPlayer(net, sims=0).choose_many(states) == independent_argmax(net, states)


def test_search_moves_do_not_depend_on_chunking(net, monkeypatch):
    states = [Connect4State.from_moves(m) for m in MOVES]
    whole = net_moves(net, states, 16, seed=3)
    monkeypatch.setattr(pe, "CHUNK", 2)   # fresh trees per chunk: no tree leaks from one position to another
    assert net_moves(net, states, 16, seed=3) == whole
    assert all(m in s.legal_actions() for m, s in zip(whole, states))
    with pytest.raises(ValueError, match="sims must be >= 0"):
        net_moves(net, states, -1, seed=0)


def test_file_set_uses_its_sidecar_and_never_writes_beside_it(tmp_path, monkeypatch):
    path = tmp_path / "mine.txt"
    save_positions(path, [("4455", 18), ("121212", 18)])
    rows = [("4455", [-4, -3, 18, 2, 2, 18, -3]), ("121212", [18, -3, -18, -18, -18, -18, -18])]  # solver values
    save_move_scores(move_scores_path(path), rows)

    def no_solver(*args, **kwargs):
        raise AssertionError("the sidecar should have been used")

    monkeypatch.setattr(pe, "label_moves", no_solver)
    found = position_set(str(path), 10, seed=0, cache_dir=tmp_path / "cache")
    assert found.name == "mine" and found.split == "positions-mine" and found.moves == ["4455", "121212"]
    assert found.scores == [r for _, r in rows]
    assert position_set(str(path), 1, seed=0, cache_dir=tmp_path / "cache").moves == ["4455"]   # first N
    assert not (tmp_path / "cache").exists()


def test_bad_sets_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="neither a kind"):
        position_set("midgame", 5, 0, tmp_path)
    with pytest.raises(ValueError, match="count must be >= 1"):
        position_set("endgame", 0, 0, tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no positions"):
        position_set(str(tmp_path / "empty.txt"), 5, 0, tmp_path)


@needs_bitbully
def test_kind_sets_are_generated_once_then_cached(tmp_path, monkeypatch):
    first = position_set("middle-soon", 12, seed=5, cache_dir=tmp_path)
    cached = tmp_path / "middle-soon-12-seed5.txt"
    assert [m for m, _ in load_positions(cached)] == first.moves
    assert move_scores_path(cached).is_file()
    for moves, row in zip(first.moves, first.scores):
        assert sum(s is not None for s in row) == len(Connect4State.from_moves(moves).legal_actions())
    monkeypatch.setattr(pe, "generate_positions", lambda *a, **k: pytest.fail("should come from the cache"))
    monkeypatch.setattr(pe, "label_moves", lambda *a, **k: pytest.fail("should come from the cache"))
    assert position_set("middle-soon", 12, seed=5, cache_dir=tmp_path) == first


@needs_bitbully
def test_search_beats_random_and_the_solver_is_perfect(tmp_path):
    from alphaloop.evals.positions import uct_position_records
    from alphaloop.games.positions import move_quality
    from alphaloop.games.solver import best_moves

    sets = [position_set("middle-soon", 30, seed=1, cache_dir=tmp_path)]
    (floor,) = random_position_records(sets)
    (uct,) = uct_position_records(sets, [300], seed=0)
    assert uct["decoder"] == "uct@300" and uct["metrics"]["n"] == 30
    assert uct["metrics"]["good_move_rate"] >= floor["metrics"]["good_move_rate"] + 0.1
    solver_moves = [best_moves(m)[0] for m in sets[0].moves]
    assert move_quality(sets[0].scores, solver_moves)["perfect_move_rate"] == 1.0
