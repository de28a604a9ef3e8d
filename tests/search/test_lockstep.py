"""`search_many` runs all games' trees as numpy arrays in lock-step; it must return exactly what
one `search` per game returns (same arithmetic, same order), including across moves with reuse."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import HashEvaluator, Nim

from alphaloop.games.connect4 import Connect4State
from alphaloop.games.tictactoe import TicTacToeState
from alphaloop.search import MCTS, MCTSConfig


def assert_same(a, b) -> None:
    assert np.array_equal(a.visit_counts, b.visit_counts)
    assert np.array_equal(a.q_values, b.q_values, equal_nan=True)
    assert np.array_equal(a.prior, b.prior)
    assert a.root_value == b.root_value


@pytest.mark.parametrize(
    "config",
    [
        MCTSConfig(num_simulations=30, batch_size=1),
        MCTSConfig(num_simulations=30, batch_size=5, c_base=19652, fpu=-0.2),
        MCTSConfig(num_simulations=37, batch_size=16, virtual_loss=3.0),
    ],
)
def test_lockstep_equals_one_search_per_game_over_a_whole_game(config: MCTSConfig) -> None:
    # Four connect-four games played to the end with tree reuse: every move's statistics agree.
    # (The list-based single-game search is the reference for the numpy lock-step one.)
    games = [Connect4State.from_moves(m) for m in ("1", "2", "43", "4455")]  # never the same history
    solo = [MCTS(HashEvaluator(), config, seed=0) for _ in games]
    many = MCTS(HashEvaluator(), config, seed=0)
    reused = 0
    while games:
        expected = [m.search(s) for m, s in zip(solo, games)]
        got = many.search_many(games)
        for a, b in zip(expected, got):
            assert_same(a, b)
        reused += sum(r.visit_counts.sum() > config.num_simulations for r in got)
        keep = []
        for k, (state, result) in enumerate(zip(games, got)):
            state.apply_action(int(np.argmax(result.visit_counts)))
            if not state.is_terminal():
                keep.append(k)
        # finished games drop out; the survivors' trees are found again by move history
        games, solo = [games[k] for k in keep], [solo[k] for k in keep]
    assert reused > 10


def test_games_with_the_same_history_each_continue_their_own_copy() -> None:
    # Identical games in one batch (common early in self-play): each reuses the shared previous tree
    # by copying it, and every game's statistics still equal a search of that game alone.
    config = MCTSConfig(num_simulations=40, batch_size=4)
    games = [Connect4State.from_moves(m) for m in ("44", "44", "44", "3")]
    solo = [MCTS(HashEvaluator(), config, seed=0) for _ in games]
    many = MCTS(HashEvaluator(), config, seed=0)
    for move in range(6):
        expected = [m.search(s) for m, s in zip(solo, games)]
        got = many.search_many(games)
        for a, b in zip(expected, got):
            assert_same(a, b)
        if move:
            assert all(r.visit_counts.sum() > config.num_simulations for r in got)   # all reused
        for k, (state, result) in enumerate(zip(games, got)):
            ranked = np.argsort(-result.visit_counts, kind="stable")
            state.apply_action(int(ranked[min(k, 1)]))      # games 1-3 leave the shared line
        assert not any(s.is_terminal() for s in games)


def test_lockstep_with_terminal_heavy_trees_and_noise() -> None:
    config = MCTSConfig(num_simulations=50, batch_size=4, dirichlet_fraction=0.25, dirichlet_alpha=1.0)
    piles = [Nim(n) for n in (2, 3, 5, 6, 9)]
    many = MCTS(HashEvaluator(), config, seed=5).search_many(piles)
    again = MCTS(HashEvaluator(), config, seed=5).search_many(piles)
    for a, b in zip(many, again):
        assert_same(a, b)
        assert a.visit_counts.sum() == 50
    assert many[0].visit_counts[1] == many[0].visit_counts.max()    # from 2, taking both wins
    # noise is drawn per game in order, exactly as a sequence of single searches draws it
    solo = MCTS(HashEvaluator(), config, seed=5)
    for state, b in zip(piles, many):
        assert_same(solo.search(state), b)
        solo.reset()


def test_vectorized_switch_gives_the_same_results() -> None:
    states = [TicTacToeState.from_moves(m) for m in ("", "5", "19", "152")]
    fast = MCTS(HashEvaluator(), MCTSConfig(num_simulations=80), seed=0).search_many(states)
    slow = MCTS(HashEvaluator(), MCTSConfig(num_simulations=80, vectorized=False), seed=0).search_many(states)
    for a, b in zip(fast, slow):
        assert_same(a, b)


def test_lockstep_rejects_mixed_games() -> None:
    mcts = MCTS(HashEvaluator(), MCTSConfig(num_simulations=4))
    assert mcts.search_many([]) == []
    with pytest.raises(ValueError, match=r"states\[1\]"):
        mcts.search_many([TicTacToeState(), Connect4State()])


def test_per_state_budgets_and_noise_match_the_list_trees() -> None:
    # Playout-cap randomisation asks one lock-step search for different budgets per game and root
    # noise on some games only; the numpy trees must still equal the list trees, move after move.
    config = MCTSConfig(num_simulations=60, batch_size=4, dirichlet_fraction=0.25, dirichlet_alpha=1.0)
    games = [Connect4State.from_moves(m) for m in ("1", "2", "43", "4455")]
    slow_games = [g.clone() for g in games]
    fast = MCTS(HashEvaluator(), config, seed=3)
    slow = MCTS(HashEvaluator(), config.model_copy(update={"vectorized": False}), seed=3)
    plain = MCTS(HashEvaluator(), config.model_copy(update={"dirichlet_fraction": 0.0}), seed=3)
    for move in range(5):
        sims = [60, 12, 60, 7] if move % 2 == 0 else [9, 60, 60, 60]
        explore = [n == 60 for n in sims]
        got = fast.search_many(games, simulations=sims, explore=explore)
        for a, b in zip(slow.search_many(slow_games, simulations=sims, explore=explore), got):
            assert_same(a, b)
        if move == 0:   # fresh trees: exactly the budget; a game without noise keeps the net's priors
            assert [r.visit_counts.sum() for r in got] == sims
            for k in (1, 3):
                assert np.array_equal(got[k].prior, plain.search(games[k]).prior)
                plain.reset()
        for state, other, result in zip(games, slow_games, got):
            action = int(np.argmax(result.visit_counts))
            state.apply_action(action)
            other.apply_action(action)


def test_search_many_rejects_bad_budgets() -> None:
    mcts = MCTS(HashEvaluator(), MCTSConfig(num_simulations=4))
    states = [TicTacToeState(), TicTacToeState.from_moves("5")]
    with pytest.raises(ValueError, match="simulations"):
        mcts.search_many(states, simulations=[4])
    with pytest.raises(ValueError, match="simulations"):
        mcts.search_many(states, simulations=[4, 0])
