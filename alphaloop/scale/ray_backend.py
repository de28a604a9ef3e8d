"""The Ray backend: `workers` Ray actors, each holding its own copy of the model.

Per `map` call the weights go into Ray's object store ONCE (`ray.put`) and every actor receives a
reference to them; an actor deserialises them only when their version changed since its last job, so
a round costs one broadcast however many jobs an actor runs. Job i goes to actor i mod W; an actor
runs its jobs in order and results are gathered in job order, so the output does not depend on
which actor finished first.

Ray is started on demand with a small footprint -- `num_cpus` = workers x threads, no dashboard, the
actors' output not forwarded, a 96 MiB object store (the weights of a game net are well under
1 MiB) -- and shut down again by `close`. With `address` the actors join an existing cluster instead
(`"auto"`, or `"ray://head:10001"` for Ray Client); `close` then only disconnects. A Ray that the
caller already initialised is used as it is and left running. As in Ray itself, the environment
variable RAY_ADDRESS stands in for a missing `address`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from alphaloop.errors import UserError
from alphaloop.scale.base import Factory, Job, Loader, Model, Result, Workers, load_state_dict

OBJECT_STORE_BYTES = 96 * 1024 * 1024  # Ray's minimum is 75 MiB


def import_ray():
    """`import ray`, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError("scale.backend = 'ray' needs Ray, which is not installed: "
                        "pip install 'alphaloop[ray]'  (or: pip install 'ray>=2.9')") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast on a plain `host:port` nobody listens on: Ray itself retries such an address for
    minutes, printing warnings, before it gives up. ("auto" and "ray://" addresses go to Ray as given.)"""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"scale.address = {address!r}: no Ray cluster answers there ({exc}); start one with "
                        f"`ray start --head` or fix the address (host:port of the head node, 'auto', or "
                        f"'ray://host:10001')") from None


class _Actor:
    """What runs inside each Ray actor: the model copy, the weights version it holds, the jobs."""

    def __init__(self, factory: Factory, threads: int, load: Loader) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model, self.load, self.version = factory(), load, -1

    def run(self, fn: Callable[[Model, Job], Result], job: Job, weights: list | None, version: int) -> Result:
        # `weights` is [ObjectRef] (wrapped in a list so Ray does not fetch it for every call).
        if weights is not None and version != self.version:
            import ray

            self.load(self.model, ray.get(weights[0]))
            self.version = version
        return fn(self.model, job)


class RayWorkers(Workers):
    backend = "ray"

    def __init__(self, factory: Factory, workers: int = 1, threads: int = 1, load: Loader = load_state_dict,
                 address: str | None = None) -> None:
        super().__init__(factory, workers, threads, load)
        ray = import_ray()
        # Ray's own convention: RAY_ADDRESS names the cluster when no address is given.
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.address = address
        self._started = False
        if not ray.is_initialized():
            if address is None:
                ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False,
                         object_store_memory=OBJECT_STORE_BYTES, logging_level=logging.ERROR)
            else:
                _check_reachable(address)
                try:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
                except (ConnectionError, ValueError, RuntimeError) as exc:
                    raise UserError(f"scale.address = {address!r}: cannot connect to a Ray cluster there "
                                    f"({exc})") from None
            self._started = True
        remote = ray.remote(_Actor).options(num_cpus=threads)
        self._actors = [remote.remote(self.factory, threads, self.load) for _ in range(workers)]
        # The latest weights stay referenced until the next `map` sends new ones, so an actor that had
        # no job in that round still catches up before its next job (as the single local copy would).
        self._weights: list | None = None
        self._version = 0

    def map(self, fn: Callable[[Model, Job], Result], jobs: Sequence[Job], weights: Any = None) -> list[Result]:
        import ray

        if self._actors is None:
            raise RuntimeError("RayWorkers.map called after close()")
        if weights is not None:
            self._version += 1
            self._weights = [ray.put(weights)]
        futures = [self._actors[i % len(self._actors)].run.remote(fn, job, self._weights, self._version)
                   for i, job in enumerate(jobs)]
        return ray.get(futures)

    def close(self) -> None:
        ray = import_ray()
        for actor in self._actors or []:
            ray.kill(actor)
        self._actors, self._weights = None, None
        if self._started and ray.is_initialized():
            ray.shutdown()
            self._started = False
