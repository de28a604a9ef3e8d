"""What every search shares: its settings, its result, the move choice from visit counts, and the
checked evaluator call (mctx's `base.py`: the types the tree, the action selection and the search
engines all speak). `mcts.py` (per-game list trees) and `lockstep.py` (numpy trees for many games)
both build on this module and on nothing of each other's but `MCTS` owning a `Lockstep`.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from alphaloop.games.base import GameState
from alphaloop.search.evaluators import Evaluator


class MCTSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_simulations: int = Field(100, ge=1)
    selection: Literal["puct", "uct"] = "puct"
    c_puct: float = Field(1.25, gt=0)           # c_init of AlphaZero 2018 when c_base is set
    c_base: float | None = Field(None, gt=0)    # 19652 in AlphaZero 2018; None = constant c_puct
    uct_c: float = Field(math.sqrt(2), ge=0)
    fpu: float = Field(0.0, ge=-1, le=1)        # Q of unvisited children
    dirichlet_alpha: float = Field(0.3, gt=0)   # AlphaZero: 0.3 chess, 0.03 Go; ~10 / num_actions
    dirichlet_fraction: float = Field(0.0, ge=0, le=1)  # 0.25 for self-play, 0 for evaluation
    batch_size: int = Field(8, ge=1)            # leaves per tree per evaluator call
    virtual_loss: float = Field(1.0, ge=0)
    temperature: float = Field(0.0, ge=0)       # default for choose(); 0 = most visited
    reuse_tree: bool = True
    vectorized: bool = True                     # numpy lock-step trees when search_many gets >= 2 games


def play_config(num_simulations: int, **settings) -> MCTSConfig:
    """Search settings for *playing* (matches, position sets, `alphaloop move`), not self-play: one
    leaf per tree per evaluator call. Several leaves per tree (`batch_size` > 1, kept apart by
    virtual loss) only exist to fill the evaluator's batch, and they make a search expand leaves it
    would not have chosen one at a time; a match fills the batch from its many games instead.
    Measured on connect four (trained ResNet + MCTS@800 against alpha-beta depth 4, the same 200
    games with two random opening plies): 84.5% wins at 8 leaves per tree, 89.5% at 1, in about
    the same wall time (277 vs 294 s)."""
    return MCTSConfig(num_simulations=num_simulations, **({"batch_size": 1} | settings))


@dataclass
class SearchResult:
    """Root statistics of one search, all over the full action space [A]."""

    visit_counts: np.ndarray   # float[A], N(root, a); 0 for illegal actions
    q_values: np.ndarray       # float[A], Q(root, a) for the player to move; NaN if unvisited/illegal
    root_value: float          # (v(root) + sum_a W(root, a)) / (1 + sum_a N(root, a))
    policy_target: np.ndarray  # float[A], training target (visit distribution, or Gumbel's pi')
    prior: np.ndarray          # float[A], root priors the search used (after any noise)
    action: int | None = None  # the action the search itself selected (Gumbel), else None


def visit_policy(counts: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """pi(a) = N(a)^(1/tau) / sum_b N(b)^(1/tau); tau -> 0 (< 1e-3) is a one-hot argmax whose
    ties are broken uniformly with `rng` (so a seeded player is reproducible but not biased)."""
    counts = np.asarray(counts, dtype=np.float64)
    if temperature < 0:
        raise ValueError(f"temperature: expected >= 0, got {temperature}")
    if counts.ndim != 1 or not counts.sum() > 0:
        raise ValueError(f"counts: expected a 1-D array with positive sum, got {counts}")
    if temperature < 1e-3:
        best = np.flatnonzero(counts == counts.max())
        out = np.zeros_like(counts)
        out[best[rng.integers(len(best))] if len(best) > 1 else best[0]] = 1.0
        return out
    logits = np.full_like(counts, -np.inf)
    np.log(counts, out=logits, where=counts > 0)
    logits = (logits - logits.max()) / temperature
    probs = np.exp(logits)
    return probs / probs.sum()


def most_visited(results: Sequence[SearchResult], rng: np.random.Generator) -> list[int]:
    """Each search's move for play: the action the search picked itself (Gumbel), else the most
    visited one, ties broken uniformly with `rng`."""
    return [int(r.action) if r.action is not None else int(np.argmax(visit_policy(r.visit_counts, 0.0, rng)))
            for r in results]


def evaluate_checked(
    evaluator: Evaluator, states: list[GameState], clip: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Call the evaluator once; float64 priors [B, A] and values [B], finite and clipped to [-1, 1]
    (with `clip=False` the caller checks and clips: cheaper in a Python loop for tiny batches)."""
    priors, values = evaluator.evaluate(states)
    priors = np.asarray(priors, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    num_actions = states[0].num_actions
    if priors.shape != (len(states), num_actions) or values.shape != (len(states),):
        raise ValueError(
            f"evaluator: expected priors [{len(states)}, {num_actions}] and values [{len(states)}], "
            f"got {priors.shape} and {values.shape}"
        )
    if not clip:
        return priors, values
    if not np.isfinite(values).all():
        raise ValueError(f"evaluator: values must be finite, got {values}")
    return priors, np.clip(values, -1.0, 1.0)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause automatic cyclic garbage collection inside the block (restored after, even on error)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
