"""AlphaZero loss, training steps, nets, NetEvaluator and matches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from game_helpers import independent_argmax

from alphaloop.collect.selfplay import play_games, to_examples
from alphaloop.games.match import play_match
from alphaloop.games.players import PerfectTicTacToe
from alphaloop.games.registry import from_moves, new_game
from alphaloop.games.replay import ReplayBuffer
from alphaloop.learners.alphazero import alphazero_loss, train_steps
from alphaloop.policies.nets import NetConfig, PolicyValueNet, build_net
from alphaloop.search.mcts import MCTS, MCTSConfig
from alphaloop.search.net_evaluator import NetEvaluator
from alphaloop.search.players import NetPlayer


class _FixedNet(PolicyValueNet):
    """A 'net' whose outputs are given constants, so the loss can be computed by hand."""

    def __init__(self, logits: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__(NetConfig(kind="mlp", blocks=0, hidden=1), (1,), logits.shape[1])
        self._logits = torch.nn.Parameter(logits.clone())
        self._values = values

    def forward(self, obs):
        return self._logits, self._values


def test_loss_matches_hand_computation():
    # Two positions, three actions.
    logits = torch.tensor([[0.0, math.log(3.0), -1e9], [math.log(2.0), 0.0, 0.0]])
    values = torch.tensor([0.5, -0.2])
    net = _FixedNet(logits, values)
    pi = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    z = torch.tensor([1.0, 0.0])
    loss, stats = alphazero_loss(net, torch.zeros(2, 1), pi, z)
    # Row 0: p = (1/4, 3/4, 0): CE = -(0.5 log 1/4 + 0.5 log 3/4). Row 1: p = (1/2, 1/4, 1/4): CE = log 2.
    ce = (-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)) + math.log(2.0)) / 2
    mse = ((1.0 - 0.5) ** 2 + (0.0 + 0.2) ** 2) / 2
    assert stats["policy_loss"] == pytest.approx(ce, rel=1e-6)
    assert stats["value_loss"] == pytest.approx(mse, rel=1e-6)
    assert float(loss.detach()) == pytest.approx(ce + mse, rel=1e-6)
    # KL(pi || p) = CE - H(pi); H(row 0) = log 2, H(row 1) = 0.
    assert stats["policy_kl"] == pytest.approx(ce - math.log(2.0) / 2, rel=1e-5)
    loss.backward()  # d CE / d logits = (p - pi) / B
    expected = torch.tensor([[0.25 - 0.5, 0.75 - 0.5, 0.0], [0.5 - 1.0, 0.25, 0.25]]) / 2
    assert torch.allclose(net._logits.grad, expected, atol=1e-6)


def test_loss_rejects_bad_shapes():
    net = build_net(NetConfig(kind="mlp"), new_game("tictactoe"))
    with pytest.raises(ValueError, match="target_policy"):
        alphazero_loss(net, torch.zeros(2, 3, 3, 3), torch.zeros(2, 7), torch.zeros(2))


def test_train_steps_fits_a_fixed_batch():
    torch.manual_seed(0)
    state = new_game("tictactoe")
    net = build_net(NetConfig(kind="mlp", blocks=1, hidden=32), state)
    buffer = ReplayBuffer(16, state.observation_shape, state.num_actions)
    rng = np.random.default_rng(0)
    obs = np.stack([from_moves("tictactoe", m).observation_tensor() for m in ["", "5", "51", "512"]])
    pol = np.eye(9, dtype=np.float32)[[4, 0, 8, 2]]
    buffer.add(obs, pol, np.array([0.0, 1.0, -1.0, 0.5], np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = train_steps(net, opt, buffer, 1, 8, rng)
    last = train_steps(net, opt, buffer, 150, 8, rng)
    assert not net.training
    assert last["loss"] < 0.25 * first["loss"]
    priors, values = NetEvaluator(net).evaluate([from_moves("tictactoe", m) for m in ["", "51"]])
    assert priors[0].argmax() == 4 and priors[1].argmax() == 8
    assert values[1] < -0.5


def test_bfloat16_mixed_precision_training_fits_like_fp32(tmp_path):
    state = new_game("connect4")
    obs = np.stack([from_moves("connect4", m).observation_tensor() for m in ["", "4", "44", "443", "4432"]])
    pol = np.eye(7, dtype=np.float32)[[3, 3, 2, 1, 0]]
    losses = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        net = build_net(NetConfig(channels=8, blocks=1, hidden=16, inference="float32"), state)
        buffer = ReplayBuffer(16, state.observation_shape, state.num_actions)
        buffer.add(obs, pol, np.array([0.0, 1.0, -1.0, 0.5, -0.5], np.float32))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        first = train_steps(net, opt, buffer, 1, 8, np.random.default_rng(0), precision)
        last = train_steps(net, opt, buffer, 100, 8, np.random.default_rng(1), precision)
        assert last["loss"] < 0.25 * first["loss"], precision
        assert all(p.dtype == torch.float32 for p in net.parameters())       # fp32 master weights
        losses[precision] = (first["loss"], last["loss"])
        net.save(tmp_path / precision)                                         # channels-last weights save
        assert torch.equal(PolicyValueNet.load(tmp_path / precision).infer(torch.from_numpy(obs))[0],
                           net.infer(torch.from_numpy(obs))[0])
    assert losses["bfloat16"][0] == pytest.approx(losses["float32"][0], rel=0.02)   # same first step
    with pytest.raises(ValueError, match="precision"):
        train_steps(net, opt, buffer, 1, 8, np.random.default_rng(0), "float16")


def test_net_evaluator_masks_illegal_moves():
    torch.manual_seed(0)
    net = build_net(None, new_game("tictactoe"))
    states = [from_moves("tictactoe", "5193"), new_game("tictactoe")]
    priors, values = NetEvaluator(net).evaluate(states)
    assert priors.shape == (2, 9) and values.shape == (2,)
    assert np.all(priors[0, [4, 0, 8, 2]] == 0.0)
    assert np.all(priors[0, [1, 3, 5, 6, 7]] > 0.0)
    assert priors.sum(1) == pytest.approx([1.0, 1.0], abs=1e-6)
    assert np.all(np.abs(values) <= 1.0)


def test_net_evaluator_is_independent_of_batch():
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8), new_game("connect4"))
    net.train()  # the evaluator must still use running batch-norm statistics
    a, b = from_moves("connect4", "4444"), from_moves("connect4", "1234567")
    ev = NetEvaluator(net)
    pa, va = ev.evaluate([a])
    pab, vab = ev.evaluate([a, b])
    assert np.allclose(pa[0], pab[0], atol=1e-6) and va[0] == pytest.approx(vab[0], abs=1e-6)
    assert net.training
    assert ev.calls == 2 and ev.positions == 3


@pytest.mark.parametrize("kind", ["resnet", "mlp"])
def test_net_save_load_roundtrip(tmp_path, kind):
    torch.manual_seed(0)
    net = build_net(NetConfig(kind=kind, channels=4, blocks=1, hidden=8), new_game("connect4"))
    net.eval()
    net.save(tmp_path / "net")
    loaded = PolicyValueNet.load(tmp_path / "net")
    obs = torch.randn(3, 3, 6, 7)
    with torch.no_grad():
        assert torch.equal(net(obs)[0], loaded(obs)[0]) and torch.equal(net(obs)[1], loaded(obs)[1])
    assert loaded.config == net.config


def test_net_config_rejects_unknown_fields():
    with pytest.raises(ValueError):
        NetConfig(channel=32)
    with pytest.raises(ValueError, match="observation_shape"):
        PolicyValueNet(NetConfig(), (27,), 9)


class _ScriptedPlayer:
    def __init__(self, moves: list[int]) -> None:
        self.moves = moves

    def choose(self, state) -> int:
        return next(a for a in self.moves if a in state.legal_actions())


def test_play_match_alternates_colours():
    # Both take the lowest free cell: X gets 0, 2, 4, 6 and wins on the anti-diagonal, so whoever
    # moves first wins, and A must win exactly the games it opens.
    a, b = _ScriptedPlayer(list(range(9))), _ScriptedPlayer(list(range(9)))
    assert play_match(a, b, "tictactoe", 5) == (3, 0, 2)


def test_raw_net_player_plays_legal_argmax():
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp", inference="float32"), new_game("tictactoe")).eval()
    player = NetPlayer(net, sims=0)
    states = [from_moves("tictactoe", m) for m in ("", "5", "51", "519", "5193")]
    moves = [player.choose(s) for s in states]
    assert moves == independent_argmax(net, states)
    assert moves[1] != 4 and all(m in s.legal_actions() for m, s in zip(moves, states))


# ---- learning: AlphaZero from zero on tic-tac-toe ------------------------------------------

def _perfect_lines(net: PolicyValueNet) -> dict[int, tuple[int, int]]:
    """For each seat of the raw net (argmax policy, no search): (lines, losses) over every game the
    perfect player can produce -- at each of its turns it may play any of its optimal moves."""
    player, perfect, cache = NetPlayer(net, sims=0), PerfectTicTacToe(), {}

    def walk(state, seat: int) -> tuple[int, int]:
        if state.is_terminal():
            return 1, int(state.returns()[seat] < 0)
        if state.current_player() == seat:
            if state.key() not in cache:
                cache[state.key()] = player.choose(state)
            moves = [cache[state.key()]]
        else:
            moves = perfect.best_moves(state)
        lines = losses = 0
        for action in moves:
            child = state.clone()
            child.apply_action(action)
            n, lost = walk(child, seat)
            lines, losses = lines + n, losses + lost
        return lines, losses

    return {seat: walk(new_game("tictactoe"), seat) for seat in (0, 1)}


def _alphazero_tictactoe(iterations: int, seed: int = 0) -> PolicyValueNet:
    """The AlphaZero loop at toy scale: 64 self-play games in lock-step with 32 PUCT simulations per
    move (Dirichlet root noise, temperature 1 for 4 moves), their positions 8-fold augmented into the
    replay buffer, then 100 Adam steps on batches of 128; repeat."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    state = new_game("tictactoe")
    net = build_net(NetConfig(channels=32, blocks=2), state).eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    buffer = ReplayBuffer(20_000, state.observation_shape, state.num_actions)
    config = MCTSConfig(num_simulations=32, dirichlet_fraction=0.25, dirichlet_alpha=1.0)
    search = MCTS(NetEvaluator(net), config, seed=seed)
    for _ in range(iterations):
        buffer.add_game(to_examples(play_games("tictactoe", search, 64, 4, rng)))
        train_steps(net, optimizer, buffer, 100, 128, rng)
    return net


def test_alphazero_tictactoe_short_run_learns():
    """Eight iterations (512 games, ~7 s): the raw net already loses few perfect-player lines.

    (At four iterations the lost-line share as O still swings between 1% and 13% with the seed and
    the CPU's float rounding; at eight, seeds 0-3 lose none.)"""
    untrained = _perfect_lines(_alphazero_tictactoe(0))
    trained = _perfect_lines(_alphazero_tictactoe(8))
    for seat in (0, 1):
        lines, losses = trained[seat]
        before_lines, before_losses = untrained[seat]
        assert before_losses / before_lines > 0.3, untrained
        assert losses / lines <= 0.05, trained


@pytest.mark.slow
def test_alphazero_tictactoe_raw_net_never_loses_to_perfect_play():
    """AlphaZero from zero, 25 iterations (1,600 self-play games): the raw policy net, with no search,
    never loses any line the perfect player can choose, as X or as O."""
    trained = _perfect_lines(_alphazero_tictactoe(25))
    assert trained[0][1] == 0 and trained[1][1] == 0, trained
    # every optimal reply was explored: how many lines that makes depends on the net's own moves (98 on an
    # AVX2-only CPU, more with AMX), so the bound is loose; the claim is the zero losses above
    assert trained[0][0] >= 2 and trained[1][0] >= 50, trained


class _Spy:
    """A scripted player that batches: records how many games each choose_many call covered."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def choose_many(self, states) -> list[int]:
        self.calls.append(len(states))
        return [s.legal_actions()[0] for s in states]


def test_play_match_moves_every_unfinished_game_per_call():
    # After the first turn every game has the same player to move, so each call after the first
    # covers every unfinished game: what lets a searching player keep each game's tree.
    a, b = _Spy(), _ScriptedPlayer(list(range(9)))
    wins, draws, losses = play_match(a, b, "tictactoe", 6, seed=0, random_opening=1)
    assert wins + draws + losses == 6
    assert a.calls[0] == 3 and a.calls[1] == 6
    assert all(x >= y for x, y in zip(a.calls[1:], a.calls[2:]))


def test_choose_many_equals_choose_one_state_at_a_time():
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8, blocks=1), new_game("connect4"))
    states = [from_moves("connect4", m) for m in ("", "4", "44", "3412", "1234567")]
    raw = NetPlayer(net, sims=0)
    assert raw.choose_many(states) == [raw.choose(s) for s in states]
    # 61 simulations leave every root with one most visited move (asserted): ties would be broken by
    # the search's generator, which one player shares over its games and fresh players do not
    player = NetPlayer(net, sims=61, seed=0)
    results = player.search.search_many(states)
    assert all((r.visit_counts == r.visit_counts.max()).sum() == 1 for r in results)
    many = NetPlayer(net, sims=61, seed=0).choose_many(states)
    solo = [NetPlayer(net, sims=61, seed=0).choose(s) for s in states]
    assert many == solo


def _spied(player: NetPlayer) -> list[tuple[tuple[int, ...], float, int]]:
    """Record (move history, root visit total, number of most-visited moves) of every search `player` runs."""
    seen: list[tuple[tuple[int, ...], float, int]] = []
    search_many = player.search.search_many

    def spy(states, *args, **kwargs):
        results = search_many(states, *args, **kwargs)
        for state, r in zip(states, results):
            counts = r.visit_counts
            seen.append((tuple(state.move_history()), float(counts.sum()), int((counts == counts.max()).sum())))
        return results

    player.search.search_many = spy
    return seen


def test_a_match_searches_each_game_as_if_played_alone():
    # Four games at once against a deterministic raw net: every search of the searching player --
    # including tree reuse, visible as more than `sims` root visits -- is the same as in that game
    # played on its own with a fresh player. The one-ply openings (seed 4: columns 6, 5, 4, 7) differ,
    # so no game can continue another game's tree (which `search_many` would do for the very same
    # moves, like a transposition table kept across games), and the net is tie-free (ties for the most
    # visited move are broken by a generator the games share), which the test asserts.
    torch.manual_seed(8)
    net = build_net(NetConfig(channels=8, blocks=1), new_game("connect4"))
    eight = MCTSConfig(batch_size=8)           # the tie-free searches this test was set up with
    player = NetPlayer(net, sims=41, seed=0, search_config=eight)
    together = _spied(player)
    result = play_match(player, NetPlayer(net, sims=0), "connect4", 4, seed=4, random_opening=1)
    alone, wins = [], 0
    for game in range(4):
        solo = NetPlayer(net, sims=41, seed=0, search_config=eight)
        seen = _spied(solo)
        if game % 2 == 0:
            wins += play_match(solo, NetPlayer(net, sims=0), "connect4", 1, seed=4 + game, random_opening=1)[0]
        else:
            wins += play_match(NetPlayer(net, sims=0), solo, "connect4", 1, seed=4 + game, random_opening=1)[2]
        alone += seen
    assert len({h[:1] for h, _, _ in together}) == 4
    assert all(ties == 1 for _, _, ties in together + alone)
    assert sorted(together) == sorted(alone)
    assert result[0] == wins
    assert any(total > 41 for _, total, _ in together)


def test_players_search_one_leaf_per_tree_unless_told_otherwise():
    from alphaloop.search import play_config

    net = build_net(NetConfig(channels=8, blocks=1), new_game("connect4"))
    assert NetPlayer(net, sims=50).search.config.batch_size == 1
    assert NetPlayer(net, sims=50, search_config=MCTSConfig(batch_size=8)).search.config.batch_size == 8
    assert play_config(20, selection="uct").model_dump() == MCTSConfig(num_simulations=20, batch_size=1,
                                                                       selection="uct").model_dump()
    assert play_config(20, batch_size=4).batch_size == 4
