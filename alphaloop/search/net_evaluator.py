"""Leaf evaluation for tree search with a policy-value net (the Evaluator protocol).

    priors[b, a] = exp(l_ba) / sum_{a' legal} exp(l_ba')   for legal a,  0 for illegal a
    values[b]    = v(s_b)   (expected outcome for the player to move in s_b)

A batch of states costs one forward pass, which is what makes lock-step self-play cheap: MCTS asks
for every game's leaf at once. Illegal moves are masked with -inf *before* the softmax, so the
priors over legal moves sum to 1 and search never spends a simulation on an illegal move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from alphaloop.policies.nets import PolicyValueNet


def legal_mask(states: Sequence, num_actions: int) -> np.ndarray:
    """bool[B, num_actions], True where the action is legal in that state."""
    mask = np.zeros((len(states), num_actions), dtype=bool)
    for row, state in enumerate(states):
        mask[row, state.legal_actions()] = True
    return mask


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the True entries of `mask` only; a row with no legal action comes out all zero."""
    masked = logits.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(masked, dim=-1)
    return torch.nan_to_num(probs, nan=0.0)


class NetEvaluator:
    """`evaluate(states) -> (priors float32[B, A], values float32[B])` from one forward of `net`.

    `calls` and `positions` count forward passes and evaluated states (for benchmarks).
    """

    def __init__(self, net: PolicyValueNet, device: str | torch.device = "cpu") -> None:
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"net must be a torch.nn.Module (a PolicyValueNet), got {type(net).__name__}")
        self.net = net
        self.device = torch.device(device)
        self.calls = 0
        self.positions = 0

    def evaluate(self, states: Sequence) -> tuple[np.ndarray, np.ndarray]:
        num_actions = self.net.num_actions
        if len(states) == 0:
            return np.zeros((0, num_actions), np.float32), np.zeros((0,), np.float32)
        obs = torch.from_numpy(np.stack([np.asarray(s.observation_tensor(), np.float32) for s in states]))
        mask = torch.from_numpy(legal_mask(states, num_actions))
        was_training = self.net.training
        # Batch-norm must use its running statistics, so a leaf's value does not depend on its batch.
        self.net.eval()
        try:
            with torch.inference_mode():
                logits, values = self.net(obs.to(self.device))
                priors = masked_softmax(logits.float().cpu(), mask)
        finally:
            if was_training:
                self.net.train()
        self.calls += 1
        self.positions += len(states)
        return priors.numpy().astype(np.float32), values.float().cpu().numpy().astype(np.float32)

    __call__ = evaluate
