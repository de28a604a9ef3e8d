"""AlphaZero PUCT search: forced wins and blocks, exact terminal values, simulation accounting,
tree reuse, root-only Dirichlet noise, reproducibility, and the batched multi-game entry point."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from search_helpers import ConstEvaluator, HashEvaluator, Nim

from alphaloop.games.tictactoe import TicTacToeState
from alphaloop.search import (
    MCTS,
    MCTSConfig,
    RandomRolloutEvaluator,
    UniformEvaluator,
    visit_policy,
)


def ttt(moves: str) -> TicTacToeState:
    return TicTacToeState.from_moves(moves)


# ---- finding wins and blocks ------------------------------------------------------------------
@pytest.mark.parametrize("selection", ["puct", "uct"])
def test_win_in_one(selection: str) -> None:
    # X . X / O . . / O . .  -- X to move; cell 1 (top middle) wins at once.
    config = MCTSConfig(num_simulations=200, selection=selection, batch_size=1)
    mcts = MCTS(RandomRolloutEvaluator(seed=0), config, seed=0)
    state = ttt("1437")
    assert mcts.choose(state) == 1


@pytest.mark.parametrize("moves, winning", [("1237", 8), ("1238", 4)])
def test_win_in_two_by_a_fork(moves: str, winning: int) -> None:
    # X O X / . . . / O . .  -- no immediate win; cell 8 makes two threats at once (the only win).
    mcts = MCTS(RandomRolloutEvaluator(seed=1), MCTSConfig(num_simulations=1500), seed=0)
    assert mcts.choose(ttt(moves)) == winning


def test_forced_block() -> None:
    # X X . / . O . / . . .  -- O to move must block at cell 2; every other move loses.
    mcts = MCTS(RandomRolloutEvaluator(seed=2), MCTSConfig(num_simulations=400), seed=0)
    result = mcts.search(ttt("152"))
    assert int(np.argmax(result.visit_counts)) == 2


def test_nim_winning_move_found_with_a_useless_evaluator() -> None:
    # The search alone (value 0 everywhere, exact terminal values) must solve Nim from 5.
    mcts = MCTS(ConstEvaluator(0.0), MCTSConfig(num_simulations=300), seed=0)
    result = mcts.search(Nim(5))
    assert int(np.argmax(result.visit_counts)) == 0
    assert result.q_values[0] > 0.5 and result.root_value > 0.3


# ---- exactness and accounting -----------------------------------------------------------------
def test_terminal_values_are_exact_never_the_evaluator() -> None:
    # From 3 stones, "take 3" (action 2) ends the game with a win: its Q must be exactly +1 even
    # though the evaluator claims every position is worth -0.5 (and would fail on a terminal state).
    mcts = MCTS(ConstEvaluator(-0.5), MCTSConfig(num_simulations=50, batch_size=4), seed=0)
    result = mcts.search(Nim(3))
    assert result.q_values[2] == 1.0
    assert result.visit_counts[2] > result.visit_counts[0] + result.visit_counts[1]
    # Taking 2 leaves 1 stone: the opponent takes it and wins, exactly -1 below the first visit
    # (which saw the evaluator's +0.5 for us, i.e. -(-0.5)).
    n1 = result.visit_counts[1]
    assert result.q_values[1] == pytest.approx((0.5 - (n1 - 1)) / n1)


@pytest.mark.parametrize("batch_size", [1, 3, 8, 64])
@pytest.mark.parametrize("sims", [1, 7, 100])
def test_visit_counts_sum_to_num_simulations(batch_size: int, sims: int) -> None:
    config = MCTSConfig(num_simulations=sims, batch_size=batch_size)
    for state in (Nim(7), ttt(""), ttt("1529")):
        result = MCTS(HashEvaluator(), config, seed=0).search(state)
        assert result.visit_counts.sum() == sims
        assert result.policy_target.sum() == pytest.approx(1.0)
        illegal = np.setdiff1d(np.arange(state.num_actions), state.legal_actions())
        assert (result.visit_counts[illegal] == 0).all() and np.isnan(result.q_values[illegal]).all()


def test_batching_sends_several_leaves_per_call() -> None:
    evaluator = ConstEvaluator()
    MCTS(evaluator, MCTSConfig(num_simulations=64, batch_size=8), seed=0).search(ttt(""))
    assert max(evaluator.sizes) == 8 and evaluator.calls < 64


# ---- tree reuse ---------------------------------------------------------------------------------
@pytest.mark.parametrize("explicit_advance", [True, False])
def test_tree_reuse_keeps_the_subtree(explicit_advance: bool) -> None:
    mcts = MCTS(HashEvaluator(), MCTSConfig(num_simulations=200), seed=0)
    state = ttt("")
    first = mcts.search(state)
    action = int(np.argmax(first.visit_counts))
    child_visits = first.visit_counts[action]
    state.apply_action(action)
    if explicit_advance:
        mcts.advance(action)
    second = mcts.search(state)
    # The child was reached child_visits times; every visit but the first went through one of its edges.
    assert second.visit_counts.sum() == child_visits - 1 + 200
    fresh = MCTS(HashEvaluator(), MCTSConfig(num_simulations=200, reuse_tree=False), seed=0)
    fresh.search(ttt(""))
    assert fresh.search(state).visit_counts.sum() == 200


def test_reuse_is_dropped_for_an_unrelated_position() -> None:
    mcts = MCTS(HashEvaluator(), MCTSConfig(num_simulations=50), seed=0)
    mcts.search(ttt("15"))
    assert mcts.search(ttt("19")).visit_counts.sum() == 50
    with pytest.raises(ValueError, match="action"):
        mcts.advance(0)   # cell 0 is taken in the root position "19"


# ---- noise and randomness ----------------------------------------------------------------------
def test_dirichlet_noise_only_at_the_root() -> None:
    config = MCTSConfig(num_simulations=100, dirichlet_fraction=0.25, dirichlet_alpha=0.3)
    mcts = MCTS(UniformEvaluator(), config, seed=3)
    result = mcts.search(ttt(""))
    assert result.prior.sum() == pytest.approx(1.0)
    assert not np.allclose(result.prior, 1 / 9)
    assert (result.prior >= 0.75 / 9 - 1e-12).all()      # (1 - eps) * P + eps * noise, noise >= 0
    tree = mcts._trees[0]
    assert tree.prior[tree.root] == pytest.approx([1 / 9] * 9)   # restored after the search
    inner = [p for node, p in enumerate(tree.prior) if node != tree.root and p is not None]
    assert len(inner) > 10
    assert all(p == pytest.approx([1 / len(p)] * len(p)) for p in inner)


def test_seeded_runs_are_reproducible() -> None:
    config = MCTSConfig(num_simulations=150, dirichlet_fraction=0.25, batch_size=4)

    def run(seed: int) -> tuple[np.ndarray, int]:
        mcts = MCTS(RandomRolloutEvaluator(seed=seed), config, seed=seed)
        return mcts.search(ttt("5")).visit_counts, mcts.choose(ttt("5"), temperature=1.0)

    a, b, c = run(7), run(7), run(8)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], c[0])


def test_visit_policy_temperature() -> None:
    counts = np.array([0.0, 2.0, 6.0, 2.0])
    rng = np.random.default_rng(0)
    assert visit_policy(counts, 1.0, rng) == pytest.approx([0, 0.2, 0.6, 0.2])
    assert visit_policy(counts, 0.5, rng) == pytest.approx([0, 4 / 44, 36 / 44, 4 / 44])
    assert visit_policy(counts, 0.0, rng) == pytest.approx([0, 0, 1, 0])
    ties = {int(np.argmax(visit_policy(np.array([3.0, 0.0, 3.0]), 0.0, rng))) for _ in range(50)}
    assert ties == {0, 2}


# ---- the AlphaZero 2018 exploration schedule -------------------------------------------------------
def test_c_base_schedule_still_solves_nim() -> None:
    config = MCTSConfig(num_simulations=300, c_puct=1.25, c_base=19652)
    result = MCTS(ConstEvaluator(0.0), config, seed=0).search(Nim(6))
    assert int(np.argmax(result.visit_counts)) == 1          # take 2, leaving 4


# ---- lock-step search over many games ------------------------------------------------------------
def test_search_many_equals_searching_each_game_alone() -> None:
    positions = ["", "5", "19", "1237", "152", "5127"]
    config = MCTSConfig(num_simulations=120, batch_size=4)
    solo_calls, solo = [], []
    for moves in positions:
        evaluator = HashEvaluator()
        solo.append(MCTS(evaluator, config, seed=0).search(ttt(moves)))
        solo_calls.append(evaluator.calls)
    evaluator = HashEvaluator()
    many = MCTS(evaluator, config, seed=0).search_many([ttt(m) for m in positions])
    for a, b in zip(solo, many):
        assert np.array_equal(a.visit_counts, b.visit_counts)
        assert np.allclose(a.q_values, b.q_values, equal_nan=True)
        assert a.root_value == pytest.approx(b.root_value)
    assert evaluator.calls <= max(solo_calls) + 1 < sum(solo_calls)
    assert max(evaluator.sizes) > config.batch_size


@pytest.mark.parametrize("config", [MCTSConfig(num_simulations=60, vectorized=False),
                                    MCTSConfig(num_simulations=60, selection="uct", batch_size=1)])
def test_list_trees_are_reused_by_game_not_by_batch_position(config: MCTSConfig) -> None:
    # Three games; after one move the first game leaves the batch. The others must still continue their
    # own trees (found by move history), not the tree of whichever game used to sit in their slot.
    mcts = MCTS(HashEvaluator(), config, seed=0)
    games = [ttt(m) for m in ("", "5", "19")]
    first = mcts.search_many(games)
    survivors = []
    for state, result in zip(games[1:], first[1:]):
        action = int(np.argmax(result.visit_counts))
        state.apply_action(action)
        survivors.append((state, result.visit_counts[action]))
    second = mcts.search_many([s for s, _ in survivors])
    for (_, child_visits), result in zip(survivors, second):
        assert result.visit_counts.sum() == child_visits - 1 + 60       # the subtree was kept
    # the same position twice in one call: only one of them may take over the old tree
    mcts = MCTS(HashEvaluator(), config, seed=0)
    mcts.search(ttt("5"))
    twins = mcts.search_many([ttt("5"), ttt("5")])
    assert sorted(r.visit_counts.sum() for r in twins) == [60, 120]


# ---- bad input ---------------------------------------------------------------------------------------
def test_clear_errors() -> None:
    mcts = MCTS(UniformEvaluator(), MCTSConfig(num_simulations=4))
    with pytest.raises(ValueError, match=r"states\[0\].*non-terminal"):
        mcts.search(ttt("12539"))              # X completed the diagonal 1-5-9: game over
    with pytest.raises(ValidationError, match="num_simulations"):
        MCTSConfig(num_simulations=0)
    with pytest.raises(ValidationError):
        MCTSConfig(c_puct=1.0, typo=3)

    class Broken:
        def evaluate(self, states):
            return np.ones((len(states), 3)), np.zeros(len(states))

    with pytest.raises(ValueError, match="evaluator: expected priors"):
        MCTS(Broken(), MCTSConfig(num_simulations=4)).search(ttt(""))
    with pytest.raises(TypeError, match="config"):
        MCTS(UniformEvaluator(), {"num_simulations": 4})
