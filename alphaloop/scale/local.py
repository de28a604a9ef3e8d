"""The in-process backend (the default): jobs run one after another in this process.

`workers` only says how the caller split its work -- it does not start anything -- so `local` with W
workers is the reference a `ray` run with W workers must reproduce exactly. The model is still a
separate copy loaded from the weights, as on a Ray actor, and the jobs run with the per-worker torch
thread count (restored afterwards), so both backends do the very same float operations.

Serial is the right default on a small machine: one process already batches a round's games in
lock-step through one net, and on 2 cores a second process mostly competes with the first (see
docs/scaling.md for the measurements).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from alphaloop.scale.base import Job, Model, Result, Workers


class LocalWorkers(Workers):
    backend = "local"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._model: Model | None = None

    def map(self, fn: Callable[[Model, Job], Result], jobs: Sequence[Job], weights: Any = None) -> list[Result]:
        if self._model is None:
            self._model = self.factory()
        if weights is not None:
            self.load(self._model, weights)
        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return [fn(self._model, job) for job in jobs]
        finally:
            torch.set_num_threads(before)

    def close(self) -> None:
        self._model = None
