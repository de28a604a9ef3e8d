"""Leaf evaluation for tree search with a policy-value net (the Evaluator protocol).

    priors[b, a] = exp(l_ba) / sum_{a' legal} exp(l_ba')   for legal a,  0 for illegal a
    values[b]    = v(s_b)   (expected outcome for the player to move in s_b)

A batch of states costs one forward pass, which is what makes lock-step self-play cheap: MCTS asks
for every game's leaf at once. Illegal moves are masked with -inf *before* the softmax, so the
priors over legal moves sum to 1 and search never spends a simulation on an illegal move.
Observations and legal masks are built for the whole batch at once (`games.base.observations`,
`legal_masks`: one numpy pass over the games' bitboards), and the net runs its eval-mode
`infer` (batch norm folded into the convolutions, no autograd).

Evaluation cache (as OpenSpiel's `AlphaZeroEvaluator`, which keeps an LRU cache of 2^16 entries keyed
by observation + legal mask): lock-step games reach the same positions again and again -- every game
starts from the same opening, and transpositions are common in connect four -- so a position already
evaluated by the current weights is answered from the cache. With 256 games of connect-four self-play
at 100 simulations about 30% of all leaf evaluations are repeats (an untrained net). It is off by
default (`cache_size=0`), so a plain evaluator always runs the net. The cache is emptied whenever the
net's weights change (any in-place update of a parameter or buffer, as optimizers, training-mode batch
norm and `load_state_dict` do, bumps torch's per-tensor version counter, which is checked every call).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from alphaloop.games.base import legal_masks, observations
from alphaloop.policies.nets import PolicyValueNet

SELFPLAY_CACHE = 2**14   # positions; with 256 connect-four games it catches as many repeats as 2^16


def legal_mask(states: Sequence, num_actions: int) -> np.ndarray:
    """bool[B, num_actions], True where the action is legal in that state."""
    return legal_masks(states, num_actions)


def greedy_moves(evaluator, states: Sequence, num_actions: int, chunk: int = 1024) -> list[int]:
    """The raw policy's move in each state (no search): argmax of the priors over legal moves,
    `chunk` states per evaluator call."""
    out: list[int] = []
    for start in range(0, len(states), chunk):
        part = list(states[start:start + chunk])
        priors, _ = evaluator.evaluate(part)
        out += np.argmax(np.where(legal_mask(part, num_actions), priors, -1.0), axis=1).astype(int).tolist()
    return out


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the True entries of `mask` only; a row with no legal action comes out all zero."""
    masked = logits.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(masked, dim=-1)
    return torch.nan_to_num(probs, nan=0.0)


class NetEvaluator:
    """`evaluate(states) -> (priors float32[B, A], values float32[B])` from one forward of `net`.

    Batch norm always uses its running statistics (the net's eval mode), so a leaf's value does not
    depend on which other leaves share its batch. `cache_size` > 0 remembers that many positions (oldest
    out first; `SELFPLAY_CACHE` suits lock-step self-play); 0, the default, runs every
    position through the net. `calls` and `positions` count forward passes and positions run through the
    net; `cache_hits` counts the others, answered from the cache (for benchmarks).
    """

    def __init__(self, net: PolicyValueNet, device: str | torch.device = "cpu", cache_size: int = 0) -> None:
        if not isinstance(net, PolicyValueNet):
            raise TypeError(f"net must be a PolicyValueNet, got {type(net).__name__}")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size: expected an int >= 0, got {cache_size!r}")
        self.net = net
        self.device = torch.device(device)
        self.cache_size = cache_size
        self.calls = 0
        self.positions = 0
        self.cache_hits = 0
        # The cache: key -> slot of a ring of `cache_size` rows [priors..., value]; a new position takes
        # the oldest slot (first in, first out), so look-ups and inserts are one dict operation each.
        self._slots: dict[bytes, int] = {}
        self._slot_keys: list[bytes | None] = [None] * cache_size
        self._table = np.zeros((cache_size, net.num_actions + 1), np.float32)
        self._next = 0
        self._weights_version: tuple[int, ...] = ()
        # The tensors whose in-place changes (optimizer steps, load_state_dict) invalidate the cache,
        # listed once: walking the modules on every call cost a sixth of a one-game self-play move.
        self._weights = (*net.parameters(), *net.buffers())

    def clear_cache(self) -> None:
        """Forget every cached evaluation (needed only after changing weights without in-place ops,
        e.g. replacing a parameter or module: build a new evaluator then)."""
        self._slots.clear()
        self._slot_keys = [None] * self.cache_size
        self._next = 0

    def _run(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """float32[B, A + 1]: the net's masked priors and its value, for a batch of observations."""
        logits, values = self.net.infer(torch.from_numpy(obs).to(self.device))
        priors = masked_softmax(logits.float().cpu(), torch.from_numpy(mask))
        self.calls += 1
        self.positions += len(obs)
        return np.concatenate([priors.numpy(), values.float().cpu().numpy()[:, None]], axis=1)

    def evaluate(self, states: Sequence) -> tuple[np.ndarray, np.ndarray]:
        num_actions = self.net.num_actions
        if len(states) == 0:
            return np.zeros((0, num_actions), np.float32), np.zeros((0,), np.float32)
        obs = observations(states)
        mask = legal_masks(states, num_actions)
        out = self._run(obs, mask) if self.cache_size == 0 else self._cached(obs, mask)
        return out[:, :-1], out[:, -1]

    def _cached(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """`_run` through the cache: only positions not seen since the weights last changed reach the
        net, each once even if it occurs several times in the batch."""
        version = tuple(t._version for t in self._weights)
        if version != self._weights_version:
            self.clear_cache()
            self._weights_version = version
        keys = _keys(obs, mask)
        slots = self._slots
        where = np.array([slots.get(k, -1) for k in keys], np.int64)
        out = np.empty((len(keys), self._table.shape[1]), np.float32)
        hit = where >= 0
        out[hit] = self._table[where[hit]]                  # read before new rows overwrite old slots
        misses = np.flatnonzero(~hit)
        self.cache_hits += len(keys)
        if misses.size:
            fresh_index: dict[bytes, int] = {}               # new position -> its row in `fresh`
            first = []
            for i in misses.tolist():
                if fresh_index.setdefault(keys[i], len(first)) == len(first):
                    first.append(i)
            self.cache_hits -= len(first)                  # (repeats within the batch count as hits)
            fresh = self._run(obs[first], mask[first])
            out[misses] = fresh[[fresh_index[keys[i]] for i in misses.tolist()]]
            size, slot_keys, taken = self.cache_size, self._slot_keys, []
            for key in fresh_index:
                slot = self._next
                old = slot_keys[slot]
                if old is not None:
                    del slots[old]
                slot_keys[slot], slots[key] = key, slot
                taken.append(slot)
                self._next = (slot + 1) % size
            self._table[taken] = fresh                      # (a slot taken twice keeps the later row)
        return out

    __call__ = evaluate


def _keys(obs: np.ndarray, mask: np.ndarray) -> list[bytes]:
    """One bytes key per position: observation + legal mask, bit-packed when the observation is 0/1
    (board planes: 17 bytes for connect four instead of 511), else the raw float bytes. The two kinds
    differ in length, so they never collide."""
    flat = obs.reshape(len(obs), -1)
    if ((flat == 0.0) | (flat == 1.0)).all():
        data = np.concatenate([np.packbits(flat != 0.0, axis=1), np.packbits(mask, axis=1)], axis=1)
    else:
        data = np.concatenate([flat.view(np.uint8), mask.view(np.uint8)], axis=1)
    return np.ascontiguousarray(data).view(np.dtype((np.void, data.shape[1]))).ravel().tolist()
