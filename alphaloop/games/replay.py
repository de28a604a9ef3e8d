"""A fixed-capacity FIFO replay buffer of (observation, policy target, value target) examples.

AlphaZero trains on positions from the most recent games only (AlphaGo Zero kept the last 500,000
games): old games were played by a weaker net, so their visit-count targets are stale. A ring
buffer gives exactly that -- once full, every new example overwrites the oldest one.

The whole buffer (arrays, write position, size) is in `state_dict()`, so a checkpoint holds it and a
resumed run samples the very same batches as one that was never interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Examples:
    """Training examples: obs float32[N, *obs_shape], policy float32[N, A], value float32[N]."""

    obs: np.ndarray
    policy: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.policy = np.asarray(self.policy, dtype=np.float32)
        self.value = np.asarray(self.value, dtype=np.float32).reshape(-1)
        n = len(self.obs)
        if self.policy.ndim != 2 or len(self.policy) != n or len(self.value) != n:
            raise ValueError(f"Examples need obs[N, ...], policy[N, A] and value[N] with one N; got shapes "
                             f"{self.obs.shape}, {self.policy.shape}, {self.value.shape}")

    def __len__(self) -> int:
        return len(self.obs)

    @staticmethod
    def concat(parts: list[Examples]) -> Examples:
        if not parts:
            raise ValueError("Examples.concat needs at least one part")
        return Examples(np.concatenate([p.obs for p in parts]), np.concatenate([p.policy for p in parts]),
                        np.concatenate([p.value for p in parts]))


class ReplayBuffer:
    """Ring buffer holding the newest `capacity` examples; `sample` draws uniformly with replacement."""

    def __init__(self, capacity: int, observation_shape: tuple[int, ...], num_actions: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.observation_shape = tuple(int(d) for d in observation_shape)
        self.num_actions = int(num_actions)
        self.obs = np.zeros((self.capacity, *self.observation_shape), np.float32)
        self.policy = np.zeros((self.capacity, self.num_actions), np.float32)
        self.value = np.zeros((self.capacity,), np.float32)
        self.next = 0       # slot the next example is written to
        self.size = 0       # number of filled slots (<= capacity)
        self.total_added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, policy: np.ndarray, value: np.ndarray) -> None:
        """Append N examples in order, overwriting the oldest once full."""
        batch = Examples(obs, policy, value)
        if batch.obs.shape[1:] != self.observation_shape:
            raise ValueError(f"obs must have shape [N, {', '.join(map(str, self.observation_shape))}], "
                             f"got {list(batch.obs.shape)}")
        if batch.policy.shape[1] != self.num_actions:
            raise ValueError(f"policy must have shape [N, {self.num_actions}], "
                             f"got {list(batch.policy.shape)}")
        n = len(batch)
        if n > self.capacity:  # only the newest `capacity` would survive anyway
            batch = Examples(batch.obs[-self.capacity:], batch.policy[-self.capacity:],
                             batch.value[-self.capacity:])
            self.total_added += n - self.capacity
            n = self.capacity
        idx = (self.next + np.arange(n)) % self.capacity
        self.obs[idx], self.policy[idx], self.value[idx] = batch.obs, batch.policy, batch.value
        self.next = int((self.next + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)
        self.total_added += n

    def add_game(self, examples: Examples) -> None:
        """Append one game's (or several games') examples, e.g. from `selfplay.to_examples`."""
        self.add(examples.obs, examples.policy, examples.value)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Examples:
        """`batch_size` examples drawn uniformly with replacement from the filled slots."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer; add games first")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        idx = rng.integers(0, self.size, size=batch_size)
        return Examples(self.obs[idx].copy(), self.policy[idx].copy(), self.value[idx].copy())

    def oldest_first(self) -> Examples:
        """All stored examples in insertion order (oldest first)."""
        if self.size < self.capacity:
            order = np.arange(self.size)
        else:
            order = (self.next + np.arange(self.capacity)) % self.capacity
        return Examples(self.obs[order].copy(), self.policy[order].copy(), self.value[order].copy())

    def state_dict(self) -> dict:
        """Plain numpy arrays and ints only (safe for safetensors / np.savez / json)."""
        n = self.size
        return {"capacity": self.capacity, "observation_shape": list(self.observation_shape),
                "num_actions": self.num_actions, "next": self.next, "size": n,
                "total_added": self.total_added,
                "obs": self.obs[:n].copy(), "policy": self.policy[:n].copy(), "value": self.value[:n].copy()}

    def load_state_dict(self, state: dict) -> None:
        shape = tuple(int(d) for d in state["observation_shape"])
        if (int(state["capacity"]), shape, int(state["num_actions"])) != (
                self.capacity, self.observation_shape, self.num_actions):
            raise ValueError(f"state_dict is for a buffer of capacity {state['capacity']}, obs {shape}, "
                             f"{state['num_actions']} actions; this buffer has capacity {self.capacity}, "
                             f"obs {self.observation_shape}, {self.num_actions} actions")
        n = int(state["size"])
        self.obs[:] = 0
        self.policy[:] = 0
        self.value[:] = 0
        self.obs[:n], self.policy[:n], self.value[:n] = state["obs"], state["policy"], state["value"]
        self.next, self.size, self.total_added = int(state["next"]), n, int(state["total_added"])

    @classmethod
    def from_state_dict(cls, state: dict) -> ReplayBuffer:
        buffer = cls(int(state["capacity"]), tuple(state["observation_shape"]), int(state["num_actions"]))
        buffer.load_state_dict(state)
        return buffer
