"""Gumbel AlphaZero search (Danihelka et al. 2022): the sequential-halving schedule, completed Q
by hand, forced wins at 2-8 simulations, pi' as the policy target, lock-step equivalence."""

from __future__ import annotations

import numpy as np
import pytest
from search_helpers import ConstEvaluator, HashEvaluator

from alphaloop.games.tictactoe import TicTacToeState
from alphaloop.search import MCTS, GumbelConfig, GumbelMCTS, MCTSConfig
from alphaloop.search.gumbel import considered_visit_sequence, sigma_completed_q

# Tic-tac-toe positions where X (to move) has exactly one immediate win, by number of legal moves.
WIN_IN_ONE = {2: ("1234657", 7), 3: ("123457", 8), 4: ("12354", 7), 5: ("1243", 6)}


class MisleadingEvaluator(ConstEvaluator):
    """A "net" that values everything at 0 and dislikes the winning move (prior 0.1 vs 1 elsewhere)."""

    def __init__(self, winning: int) -> None:
        super().__init__(0.0)
        self.winning = winning

    def evaluate(self, states):
        priors, values = super().evaluate(states)
        priors = np.ones_like(priors)
        priors[:, self.winning] = 0.1
        return priors / priors.sum(axis=1, keepdims=True), values


def test_considered_visit_sequence_by_hand() -> None:
    # m = 4, n = 8: phase 1 gives each of 4 actions one visit (floor(8 / (2 * 4)) = 1), phase 2 gives
    # each of the 2 survivors floor(8 / (2 * 2)) = 2 more.
    assert considered_visit_sequence(4, 8) == (0, 0, 0, 0, 1, 1, 2, 2)
    assert considered_visit_sequence(1, 3) == (0, 1, 2)
    assert considered_visit_sequence(3, 2) == (0, 0)
    assert len(considered_visit_sequence(16, 200)) == 200


def test_sigma_completed_q_by_hand() -> None:
    visits, sums, priors, raw = [2.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.5, 0.3, 0.2], 0.2
    # v_mix = (0.2 + 3 * (0.5 * 0.5 + 0.2 * -1) / 0.7) / 4 = 0.103571...; scale = (50 + 2) * 0.1
    v_mix = (0.2 + 3 * 0.05 / 0.7) / 4
    raw_sigma = sigma_completed_q(visits, sums, priors, raw, rescale=False)
    assert raw_sigma == pytest.approx([5.2 * 0.5, 5.2 * v_mix, -5.2])
    # min-max rescaling over the actions: (q + 1) / 1.5
    assert sigma_completed_q(visits, sums, priors, raw) == pytest.approx([5.2, 5.2 * (v_mix + 1) / 1.5, 0.0])
    # no visits: every action completes to the raw value; rescaling then maps all to 0
    assert sigma_completed_q([0, 0], [0, 0], [0.5, 0.5], 0.4, rescale=False) == pytest.approx([2.0, 2.0])


@pytest.mark.parametrize("legal", sorted(WIN_IN_ONE))
def test_low_budget_picks_the_forced_win_despite_a_misleading_prior(legal: int) -> None:
    moves, winning = WIN_IN_ONE[legal]
    state = TicTacToeState.from_moves(moves)
    assert len(state.legal_actions()) == legal
    for sims in range(max(2, legal), 9):
        config = GumbelConfig(num_simulations=sims, gumbel_scale=0.0)
        result = GumbelMCTS(MisleadingEvaluator(winning), config, seed=0).search(state)
        assert result.action == winning, (moves, sims)
        assert int(np.argmax(result.policy_target)) == winning
        assert result.visit_counts.sum() == sims


def test_puct_misses_the_win_at_the_same_budget() -> None:
    # Five legal moves, five simulations: PUCT's visit counts cannot single out the win; Gumbel's can.
    moves, winning = WIN_IN_ONE[5]
    state = TicTacToeState.from_moves(moves)
    puct = MCTS(MisleadingEvaluator(winning), MCTSConfig(num_simulations=5), seed=0)
    assert puct.choose(state) != winning
    gumbel = GumbelMCTS(MisleadingEvaluator(winning), GumbelConfig(num_simulations=5), seed=0)
    assert gumbel.choose(state) == winning


def test_sampled_gumbel_noise_rarely_overrides_a_proven_win() -> None:
    # Self-play mode (Gumbel noise on): sigma(q) = (50 + 1) * 0.1 = 5.1 for the win against noise.
    moves, winning = WIN_IN_ONE[5]
    state = TicTacToeState.from_moves(moves)
    wins = sum(
        GumbelMCTS(ConstEvaluator(), GumbelConfig(num_simulations=5), seed=seed).choose(state) == winning
        for seed in range(50)
    )
    assert wins >= 45


def test_sequential_halving_visit_counts() -> None:
    # Four legal moves, eight simulations, schedule (0, 0, 0, 0, 1, 1, 2, 2): two actions end with
    # one visit and the two survivors with three.
    state = TicTacToeState.from_moves("12354")
    result = GumbelMCTS(HashEvaluator(), GumbelConfig(num_simulations=8), seed=1).search(state)
    assert sorted(result.visit_counts[state.legal_actions()].tolist()) == [1, 1, 3, 3]
    assert result.visit_counts[result.action] == 3


def test_policy_target_is_the_improved_policy() -> None:
    # pi' = softmax(log prior + sigma(completedQ)), recomputed from the root statistics.
    state = TicTacToeState.from_moves("5")
    result = GumbelMCTS(HashEvaluator(), GumbelConfig(num_simulations=32), seed=0).search(state)
    legal = state.legal_actions()
    visits = result.visit_counts[legal]
    sums = np.nan_to_num(result.q_values[legal]) * visits
    raw_value = float(HashEvaluator().evaluate([state])[1][0])
    prior = result.prior[legal]
    sigma = sigma_completed_q(visits.tolist(), sums.tolist(), prior.tolist(), raw_value)
    logits = np.log(prior) + np.array(sigma)
    expected = np.exp(logits - logits.max())
    assert result.policy_target[legal] == pytest.approx(expected / expected.sum())
    assert result.policy_target[4] == 0.0 and result.visit_counts.sum() == 32
    assert not np.allclose(result.policy_target[legal], prior)


def test_search_many_equals_searching_each_game_alone() -> None:
    positions = ["", "5", "19", "1237", "152"]
    config = GumbelConfig(num_simulations=24, gumbel_scale=0.0)
    states = [TicTacToeState.from_moves(m) for m in positions]
    solo = [GumbelMCTS(HashEvaluator(), config, seed=0).search(s) for s in states]
    evaluator = HashEvaluator()
    many = GumbelMCTS(evaluator, config, seed=0).search_many(states)
    for a, b in zip(solo, many):
        assert a.action == b.action
        assert np.array_equal(a.visit_counts, b.visit_counts)
        assert np.allclose(a.policy_target, b.policy_target)
    assert max(evaluator.sizes) == len(positions)


def test_gumbel_rejects_the_wrong_config() -> None:
    with pytest.raises(TypeError, match="GumbelConfig"):
        GumbelMCTS(ConstEvaluator(), MCTSConfig())
