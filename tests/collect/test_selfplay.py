"""Self-play, expert games, training examples and the replay buffer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from alphaloop.collect.selfplay import GameRecord, imitation_games, play_games, select_action, to_examples
from alphaloop.games.registry import new_game
from alphaloop.games.replay import Examples, ReplayBuffer
from alphaloop.policies.nets import NetConfig, build_net
from alphaloop.search.gumbel import GumbelConfig, GumbelMCTS
from alphaloop.search.mcts import MCTS, MCTSConfig
from alphaloop.search.net_evaluator import NetEvaluator


@dataclass
class _Result:
    visit_counts: np.ndarray
    policy_target: np.ndarray
    action: int | None = None
    root_value: float = 0.0


class _PriorSearch:
    """Stands in for MCTS: 'visit counts' are the net's priors scaled to 50 visits. Counts the calls
    and the batch sizes so lock-step play can be checked."""

    def __init__(self, evaluator: NetEvaluator) -> None:
        self.evaluator = evaluator
        self.batch_sizes: list[int] = []

    def search_many(self, states):
        self.batch_sizes.append(len(states))
        priors, _ = self.evaluator.evaluate(states)
        return [_Result(np.round(p * 50), p) for p in priors]


def _replay_legal(record: GameRecord):
    state = new_game(record.game_name)
    for obs, player, action in zip(record.observations, record.players, record.actions):
        assert np.array_equal(obs, state.observation_tensor())
        assert player == state.current_player()
        assert action in state.legal_actions()
        state.apply_action(action)
    assert state.is_terminal()
    return state


@pytest.mark.parametrize("game_name", ["tictactoe", "connect4"])
def test_play_games_lock_step_legal_games_and_value_signs(game_name):
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8, blocks=1), new_game(game_name))
    search = _PriorSearch(NetEvaluator(net))
    records = play_games(game_name, search, 6, temperature_moves=4, rng=np.random.default_rng(1))
    assert len(records) == 6
    # One search call per move of the longest game; the first call holds every game.
    assert search.batch_sizes[0] == 6 and len(search.batch_sizes) == max(len(r) for r in records)
    assert search.batch_sizes == sorted(search.batch_sizes, reverse=True)
    decided = 0
    for record in records:
        final = _replay_legal(record)
        assert record.returns == tuple(final.returns())
        z = record.value_targets()
        for player, value in zip(record.players, z):
            assert value == record.returns[player]
        if record.returns[0] != 0:
            decided += 1
            # The winner made the last move: its targets are +1, the loser's -1.
            assert z[-1] == 1.0 and (len(z) < 2 or z[-2] == -1.0)
            assert set(np.unique(z)) == {-1.0, 1.0}
        else:
            assert np.all(z == 0.0)
    assert decided > 0
    # Different openings thanks to temperature 1 for the first moves.
    assert len({tuple(r.actions[:4]) for r in records}) > 1


def test_play_games_with_mcts_one_net_call_per_step():
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8, blocks=1), new_game("tictactoe"))
    evaluator = NetEvaluator(net)
    config = MCTSConfig(num_simulations=16, batch_size=8, dirichlet_fraction=0.25, reuse_tree=False)
    records = play_games("tictactoe", MCTS(evaluator, config, seed=0), 5, 2, np.random.default_rng(0))
    moves = max(len(r) for r in records)
    # Per move: one call for the fresh roots, then 16 simulations in batches of 8 -> at least 2 calls;
    # never one call per game.
    assert 3 * moves <= evaluator.calls <= 6 * moves
    for record in records:
        _replay_legal(record)
        for pi in record.policies:
            assert pi.sum() == pytest.approx(1.0)


def test_play_games_with_gumbel_plays_the_searched_action():
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp"), new_game("connect4"))
    search = GumbelMCTS(NetEvaluator(net), GumbelConfig(num_simulations=8, max_considered=4), seed=0)
    records = play_games("connect4", search, 3, 0, np.random.default_rng(0))
    for record in records:
        _replay_legal(record)
    # Temperature 0 throughout, yet the Gumbel sample still varies the games.
    assert len({tuple(r.actions) for r in records}) == 3


def test_play_games_is_reproducible():
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp"), new_game("tictactoe"))
    runs = [play_games("tictactoe", _PriorSearch(NetEvaluator(net)), 4, 9, np.random.default_rng(7))
            for _ in range(2)]
    assert [r.actions for r in runs[0]] == [r.actions for r in runs[1]]


def test_select_action_temperature():
    rng = np.random.default_rng(0)
    counts = np.array([1.0, 0.0, 3.0])
    assert select_action(counts, 0.0, rng) == 2
    draws = [select_action(counts, 1.0, rng) for _ in range(4000)]
    assert 1 not in draws
    assert np.mean(np.array(draws) == 2) == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError, match="visit_counts"):
        select_action(np.zeros(3), 1.0, rng)


def test_to_examples_augments_with_symmetries():
    record = GameRecord("tictactoe")
    state = new_game("tictactoe")
    for action in [0, 4, 8, 2, 6, 3, 5, 1, 7]:  # X wins on the bottom row
        pi = np.zeros(9, np.float32)
        pi[action] = 1.0
        record.observations.append(state.observation_tensor())
        record.policies.append(pi)
        record.players.append(state.current_player())
        record.actions.append(action)
        state.apply_action(action)
    record.returns = tuple(state.returns())
    plain = to_examples([record], augment=False)
    aug = to_examples([record], augment=True)
    assert len(plain) == len(record) and len(aug) == 8 * len(record)
    assert np.array_equal(aug.obs[::8], plain.obs) and np.array_equal(aug.policy[::8], plain.policy)
    assert np.allclose(aug.policy.sum(1), 1.0)
    # Policy mass stays on an empty cell in every image.
    occupied = aug.obs[:, 0] + aug.obs[:, 1]
    assert np.all((occupied.reshape(-1, 9) * aug.policy).sum(1) == 0.0)


def test_value_targets_from_mover_point_of_view():
    record = GameRecord("tictactoe", players=[0, 1, 0, 1, 0], actions=[0, 3, 1, 4, 2], returns=(1.0, -1.0))
    assert record.value_targets().tolist() == [1.0, -1.0, 1.0, -1.0, 1.0]


class _FirstLegal:
    def choose(self, state) -> int:
        return state.legal_actions()[0]


def test_imitation_games_record_expert_moves():
    rng = np.random.default_rng(0)
    records = imitation_games("tictactoe", _FirstLegal(), 20, rng, epsilon=0.3)
    played_off_expert = 0
    for record in records:
        _replay_legal(record)
        state = new_game("tictactoe")
        for pi, action in zip(record.policies, record.actions):
            assert pi.sum() == 1.0 and pi.argmax() == state.legal_actions()[0]
            played_off_expert += action != pi.argmax()
            state.apply_action(action)
    assert played_off_expert > 0
    greedy = imitation_games("tictactoe", _FirstLegal(), 1, rng, epsilon=0.0)[0]
    assert greedy.actions == [0, 1, 2, 3, 4, 5, 6] and greedy.returns == (1.0, -1.0)


# ---- replay buffer --------------------------------------------------------------------------

def _examples(start: int, n: int) -> Examples:
    ids = np.arange(start, start + n, dtype=np.float32)
    obs = np.ones((n, 3, 3, 3), np.float32) * ids.reshape(n, 1, 1, 1)
    pol = np.full((n, 9), 1 / 9, np.float32)
    return Examples(obs, pol, np.arange(start, start + n, dtype=np.float32))


def test_replay_buffer_fifo():
    buf = ReplayBuffer(5, (3, 3, 3), 9)
    buf.add_game(_examples(0, 3))
    assert len(buf) == 3 and buf.oldest_first().value.tolist() == [0, 1, 2]
    buf.add_game(_examples(3, 4))
    assert len(buf) == 5 and buf.oldest_first().value.tolist() == [2, 3, 4, 5, 6]
    buf.add_game(_examples(7, 12))  # more than the capacity: only the newest survive
    assert buf.oldest_first().value.tolist() == [14, 15, 16, 17, 18]
    assert buf.total_added == 19
    batch = buf.sample(64, np.random.default_rng(0))
    assert set(batch.value.tolist()) <= {14, 15, 16, 17, 18}
    assert np.all(batch.obs[:, 0, 0, 0] == batch.value)


def test_replay_buffer_state_dict_round_trip():
    buf = ReplayBuffer(7, (3, 3, 3), 9)
    for start in range(0, 20, 3):
        buf.add_game(_examples(start, 3))
    state = buf.state_dict()
    restored = ReplayBuffer.from_state_dict(state)
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    for _ in range(3):
        a, b = buf.sample(10, rng_a), restored.sample(10, rng_b)
        assert np.array_equal(a.obs, b.obs) and np.array_equal(a.value, b.value)
    buf.add_game(_examples(100, 2))
    restored.add_game(_examples(100, 2))
    assert np.array_equal(buf.oldest_first().value, restored.oldest_first().value)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(8, (3, 3, 3), 9).load_state_dict(state)


def test_replay_buffer_rejects_bad_input():
    buf = ReplayBuffer(4, (3, 3, 3), 9)
    with pytest.raises(ValueError, match="empty"):
        buf.sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="obs must have shape"):
        buf.add(np.zeros((2, 3, 6, 7)), np.zeros((2, 9)), np.zeros(2))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (3, 3, 3), 9)



class _BudgetSearch(_PriorSearch):
    """_PriorSearch that also takes per-state budgets and noise flags (as MCTS.search_many does) and
    reports the budget in the root value, so a test can see which search produced a record."""

    config = MCTSConfig(num_simulations=50)

    def __init__(self, evaluator: NetEvaluator) -> None:
        super().__init__(evaluator)
        self.calls: list[tuple[list[int], list[bool]]] = []

    def search_many(self, states, simulations=None, explore=None):
        self.calls.append((list(simulations), list(explore)))
        results = super().search_many(states)
        for result, n in zip(results, simulations):
            result.root_value = float(n)
        return results


def test_playout_cap_records_only_the_full_searches():
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8, blocks=1), new_game("connect4"))
    search = _BudgetSearch(NetEvaluator(net))
    records = play_games("connect4", search, 8, 4, np.random.default_rng(3), fast_simulations=10, full_fraction=0.3)
    sims = [n for call, _ in search.calls for n in call]
    assert set(sims) == {50, 10}
    # full searches (and only they) get root noise; about 30% of all moves are full
    assert all(e == (n == 50) for call, flags in search.calls for n, e in zip(call, flags))
    assert 0.15 < sims.count(50) / len(sims) < 0.45
    moves = sum(len(r) for r in records)
    recorded = sum(len(r.players) for r in records)
    assert moves == len(sims) and recorded == sims.count(50)
    for record in records:
        assert record.root_values == [50.0] * len(record.players)
        assert len(record.observations) == len(record.policies) == len(record.players)
        state = new_game("connect4")
        for action in record.actions:
            state.apply_action(action)
        assert state.is_terminal() and record.returns == tuple(state.returns())
    examples = to_examples(records, augment=False)
    assert len(examples) == recorded


def test_playout_cap_off_draws_nothing_extra():
    # fast_simulations = 0 must leave self-play exactly as before (same generator stream, every move kept)
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp"), new_game("tictactoe"))
    plain = play_games("tictactoe", _PriorSearch(NetEvaluator(net)), 4, 9, np.random.default_rng(7))
    again = play_games("tictactoe", _PriorSearch(NetEvaluator(net)), 4, 9, np.random.default_rng(7),
                       fast_simulations=0, full_fraction=0.5)
    assert [r.actions for r in plain] == [r.actions for r in again]
    assert all(len(r.players) == len(r) for r in again)
    with pytest.raises(ValueError, match="full_fraction"):
        play_games("tictactoe", _PriorSearch(NetEvaluator(net)), 1, 0, np.random.default_rng(0), 5, 0.0)


def test_value_targets_mix_outcome_and_root_value():
    record = GameRecord("tictactoe", players=[0, 1, 0], actions=[0, 3, 1], returns=(1.0, -1.0),
                        root_values=[0.2, -0.6, 1.0])
    assert record.value_targets().tolist() == [1.0, -1.0, 1.0]
    assert record.value_targets(0.5).tolist() == pytest.approx([0.6, -0.8, 1.0])
    assert record.value_targets(1.0).tolist() == pytest.approx([0.2, -0.6, 1.0])
    with pytest.raises(ValueError, match="root value"):
        GameRecord("tictactoe", players=[0], actions=[0]).value_targets(0.5)
    with pytest.raises(ValueError, match="q_weight"):
        record.value_targets(1.5)


def test_mcts_self_play_records_root_values():
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8, blocks=1), new_game("connect4"))
    config = MCTSConfig(num_simulations=16, dirichlet_fraction=0.25)
    records = play_games("connect4", MCTS(NetEvaluator(net), config, seed=0), 3, 2, np.random.default_rng(0),
                         fast_simulations=4, full_fraction=0.5)
    for record in records:
        assert len(record.root_values) == len(record.players) < len(record)
        assert all(-1.0 <= q <= 1.0 for q in record.root_values)
