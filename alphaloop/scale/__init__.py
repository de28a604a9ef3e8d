"""Where experience is collected: in this process (`local`, the default) or on Ray actors (`ray`).

One interface, `Workers.map(fn, jobs, weights)`: every worker holds a copy of the model, receives
the current weights, runs its share of the jobs and the results come back in job order. A recipe
picks the backend with

    [scale]
    backend = "ray"        # "local" (default): no services, nothing started
    workers = 2            # how a round's work is split, and how many Ray actors run it
    address = "auto"       # optional: join an existing Ray cluster instead of starting a local Ray

The same recipe and seed give identical results on `local` and `ray` with the same `workers` and
threads per worker (docs/scaling.md).
"""

from __future__ import annotations

from typing import Literal

from alphaloop.errors import UserError
from alphaloop.scale.base import Factory, Loader, Workers, load_state_dict, split_evenly, worker_threads
from alphaloop.scale.local import LocalWorkers


def make_workers(factory: Factory, *, backend: Literal["local", "ray"] = "local", workers: int = 1,
                 threads: int = 1, address: str | None = None, load: Loader = load_state_dict) -> Workers:
    """The backend named by a recipe's `[scale]`: LocalWorkers, or RayWorkers (Ray started or joined)."""
    if backend == "local":
        if address is not None:
            raise UserError(f"scale.address = {address!r} needs scale.backend = 'ray' (got 'local')")
        return LocalWorkers(factory, workers, threads, load)
    if backend == "ray":
        from alphaloop.scale.ray_backend import RayWorkers

        return RayWorkers(factory, workers, threads, load, address=address)
    raise UserError(f"scale.backend: expected 'local' or 'ray', got {backend!r}")


__all__ = ["LocalWorkers", "Workers", "load_state_dict", "make_workers", "split_evenly", "worker_threads"]
