"""Seeds: every random stream of a run is derived from the recipe seed and a few stable keys.

Two derivations, both stable across machines and Python versions (never Python's randomised `hash`):
`derive_seed` hashes any tuple of keys (stage names, steps, purposes) with SHA-256, and
`child_seed` mixes integer keys with numpy's SeedSequence (self-play chunks and their searches).
Changing either would change every run's numbers, so both stay exactly as they are.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any tuple of keys (their `repr`, hashed with SHA-256)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def child_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for (seed, *keys), mixed by numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global generators' states (saved in every checkpoint)."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
