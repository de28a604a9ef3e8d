"""The net evaluator's fast path: folded batch norm, chunked CPU inference, batched encodings and the
evaluation cache must all give what a plain eval-mode forward gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from search_helpers import Nim

from alphaloop.games.connect4 import Connect4State
from alphaloop.games.registry import from_moves, new_game
from alphaloop.policies.nets import CPU_CHUNK, NetConfig, PolicyValueNet, build_net, native_bf16
from alphaloop.search.net_evaluator import NetEvaluator, masked_softmax


def random_states(count: int, seed: int) -> list[Connect4State]:
    rng = np.random.default_rng(seed)
    states = []
    while len(states) < count:
        state = Connect4State()
        for _ in range(int(rng.integers(0, 20))):
            if state.is_terminal():
                break
            state.apply_action(int(rng.choice(state.legal_actions())))
        if not state.is_terminal():
            states.append(state)
    return states


def trained_looking_resnet(inference: str = "float32") -> PolicyValueNet:
    """A resnet whose batch norms have non-trivial statistics and affine parameters."""
    torch.manual_seed(0)
    net = build_net(NetConfig(channels=8, blocks=2, inference=inference), new_game("connect4"))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return net


def reference(net: PolicyValueNet, states) -> tuple[np.ndarray, np.ndarray]:
    """Priors and values from the plain eval-mode forward, one state at a time."""
    was_training = net.training
    net.eval()
    priors, values = [], []
    with torch.no_grad():
        for state in states:
            logits, value = net(torch.from_numpy(state.observation_tensor()[None]))
            mask = torch.zeros(1, net.num_actions, dtype=torch.bool)
            mask[0, state.legal_actions()] = True
            priors.append(masked_softmax(logits, mask)[0].numpy())
            values.append(float(value[0]))
    net.train(was_training)
    return np.array(priors), np.array(values)


def test_infer_folds_batch_norm_and_chunks_exactly_like_eval_forward() -> None:
    net = trained_looking_resnet()
    net.train()                                   # infer must use running statistics regardless
    before = {k: v.clone() for k, v in net.state_dict().items()}
    obs = torch.from_numpy(np.stack([s.observation_tensor() for s in random_states(CPU_CHUNK + 45, 0)]))
    logits, values = net.infer(obs)
    net.eval()
    with torch.no_grad():
        ref_logits, ref_values = net(obs)
    assert logits.shape == (CPU_CHUNK + 45, 7) and values.shape == (CPU_CHUNK + 45,)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(values, ref_values, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # no statistics updated


def test_bfloat16_inference_stays_close_to_the_fp32_forward() -> None:
    fp32, bf16 = trained_looking_resnet("float32"), trained_looking_resnet("bfloat16")
    assert bf16.inference_dtype(torch.device("cpu")) == torch.bfloat16
    assert fp32.inference_dtype(torch.device("cpu")) == torch.float32
    obs = torch.from_numpy(np.stack([s.observation_tensor() for s in random_states(CPU_CHUNK + 45, 3)]))
    ref_logits, ref_values = fp32.infer(obs)
    logits, values = bf16.infer(obs)
    assert logits.dtype == torch.float32 and values.dtype == torch.float32    # callers always get fp32
    assert logits.shape == ref_logits.shape and values.shape == ref_values.shape
    # bfloat16 keeps 8 significant bits: relative error ~2^-8 per op, a few of them per layer.
    torch.testing.assert_close(logits, ref_logits, atol=0.1, rtol=0.05)
    torch.testing.assert_close(values, ref_values, atol=0.05, rtol=0.05)
    assert not torch.equal(logits, ref_logits)                                # it did run in bfloat16
    auto = build_net(NetConfig(channels=8, blocks=2), new_game("connect4"))
    assert auto.config.inference == "auto"
    assert auto.inference_dtype(torch.device("cpu")) == (torch.bfloat16 if native_bf16() else torch.float32)


def test_openspiel_mlp_layout() -> None:
    # OpenSpiel AlphaZero "mlp", width 64, depth 2: torso 126 -> 64 -> 64, policy 64 -> 64 -> 7, value 64 -> 64 -> 1.
    net = build_net(NetConfig(kind="mlp", blocks=2, hidden=64, policy_hidden=64), new_game("connect4"))
    shapes = [tuple(p.shape) for name, p in net.named_parameters() if name.endswith("weight")]
    assert shapes == [(64, 126), (64, 64), (64, 64), (7, 64), (64, 64), (1, 64)]
    logits, value = net.infer(torch.zeros(5, 3, 6, 7))
    assert logits.shape == (5, 7) and value.shape == (5,) and (value.abs() <= 1).all()


def test_evaluator_matches_the_plain_forward_with_and_without_cache() -> None:
    net = trained_looking_resnet().eval()
    states = random_states(60, 1)
    states += [s.clone() for s in states[:20]]                  # repeats inside one batch
    distinct = len({s.key() for s in states})
    ref_priors, ref_values = reference(net, states)
    for cache_size in (0, 16, 4096):                            # 16: the ring wraps within a batch
        evaluator = NetEvaluator(net, cache_size=cache_size)
        for _ in range(2):                                       # the second pass can hit the cache
            priors, values = evaluator.evaluate(states)
            np.testing.assert_allclose(priors, ref_priors, atol=1e-5)
            np.testing.assert_allclose(values, ref_values, atol=1e-5)
        if cache_size == 4096:
            assert evaluator.positions == distinct and evaluator.cache_hits == 2 * len(states) - distinct
        if cache_size == 0:
            assert evaluator.positions == 2 * len(states) and evaluator.cache_hits == 0


def test_cache_is_dropped_when_the_weights_change() -> None:
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp", hidden=16), new_game("connect4"))
    evaluator = NetEvaluator(net, cache_size=1024)
    states = random_states(8, 2)
    before, _ = evaluator.evaluate(states)
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    logits, _ = net(torch.from_numpy(np.stack([s.observation_tensor() for s in states])))
    logits[:, 0].sum().backward()                                # push every prior towards column 0
    optimizer.step()
    after, _ = evaluator.evaluate(states)
    ref, _ = reference(net, states)
    np.testing.assert_allclose(after, ref, atol=1e-6)
    assert not np.allclose(after, before) and evaluator.calls == 2


def test_evaluator_falls_back_for_games_without_batch_encoders() -> None:
    torch.manual_seed(0)
    net = PolicyValueNet(NetConfig(kind="mlp", hidden=8), Nim.observation_shape, Nim.num_actions)
    states = [Nim(1), Nim(2), Nim(7)]
    priors, values = NetEvaluator(net).evaluate(states)
    ref_priors, ref_values = reference(net, states)
    np.testing.assert_allclose(priors, ref_priors, atol=1e-6)
    np.testing.assert_allclose(values, ref_values, atol=1e-6)
    assert (priors[0, 1:] == 0).all() and (priors[1, 2] == 0)   # taking more stones than left is illegal


def test_bad_arguments() -> None:
    net = build_net(None, new_game("tictactoe"))
    with pytest.raises(ValueError, match="cache_size"):
        NetEvaluator(net, cache_size=-1)
    with pytest.raises(TypeError, match="PolicyValueNet"):
        NetEvaluator(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="obs must have shape"):
        net.infer(torch.zeros(2, 3, 6, 7))
    priors, values = NetEvaluator(net).evaluate([])
    assert priors.shape == (0, 9) and values.shape == (0,)
    assert NetEvaluator(net).evaluate([from_moves("tictactoe", "5")])[0].shape == (1, 9)


@pytest.mark.parametrize("policy_hidden", [0, 16])
def test_mlp_infer_equals_forward_and_follows_weight_updates(policy_hidden) -> None:
    """The MLP's `infer` (direct products, for one game's few leaves) equals `forward`, with and
    without a policy hidden layer, and reads the weights as they are now."""
    torch.manual_seed(0)
    net = build_net(NetConfig(kind="mlp", blocks=2, hidden=32, policy_hidden=policy_hidden), new_game("connect4"))
    obs = torch.from_numpy(np.stack([s.observation_tensor() for s in random_states(9, 1)]))
    for _ in range(2):
        logits, values = net.infer(obs)
        with torch.no_grad():
            ref_logits, ref_values = net(obs)
        torch.testing.assert_close(logits, ref_logits)
        torch.testing.assert_close(values, ref_values)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1)
