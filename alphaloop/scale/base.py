"""The `Workers` interface: run `fn(model, job)` for a list of jobs, each worker with its own model copy.

A stage describes its work as independent *jobs* (for self-play: a chunk of games and the seed that
drives them) and hands them, with the trainer's current weights, to `Workers.map`. Results come back
in job order. Because every job carries its own seed and every worker holds an exact copy of the
weights, *where* a job runs (this process or a Ray actor) cannot change what it returns -- as long as
the worker computes with the same number of torch threads, which is why the thread count is part of
the interface: float reductions in a conv layer are summed in a different order with 1 and 2 threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")
Model = Any
Factory = Callable[[], Model]
Loader = Callable[[Model, Any], None]


def load_state_dict(model: Model, weights: Any) -> None:
    """The default `load`: `model.load_state_dict(weights)` (a torch module and its `state_dict()`)."""
    model.load_state_dict(weights)


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` items over `parts` chunks, sizes differing by at most one, larger chunks first, no
    empty chunks (fewer than `parts` chunks when total < parts): split_evenly(10, 3) == [4, 3, 3]."""
    if not isinstance(total, int) or total < 0:
        raise ValueError(f"total: expected an int >= 0, got {total!r}")
    if not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts: expected an int >= 1, got {parts!r}")
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts) if base + (i < extra) > 0]


def worker_threads(threads: int, workers: int, override: int | None = None) -> int:
    """torch threads per worker: `override` if given, else the run's `threads` shared among the
    workers (at least 1), so W workers on one machine use about the cores a single process would."""
    if override is not None:
        return int(override)
    return max(1, int(threads) // max(1, int(workers)))


class Workers(ABC):
    """`workers` workers, each holding `factory()` (a model built once), running jobs with `threads`
    torch threads. `map(fn, jobs, weights)` first loads `weights` into every worker's model with
    `load(model, weights)` (when given), then returns `[fn(model, job) for job in jobs]`, in job order.

    `fn`, `factory`, `load`, the jobs and the results must be picklable for the Ray backend (top-level
    functions, `functools.partial` of a class, dataclasses). Use as a context manager, or call `close`.
    """

    backend: str = ""

    def __init__(self, factory: Factory, workers: int = 1, threads: int = 1, load: Loader = load_state_dict) -> None:
        if not callable(factory):
            raise TypeError(f"factory: expected a callable returning the worker's model, got {factory!r}")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: expected an int >= 1, got {workers!r}")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected an int >= 1, got {threads!r}")
        self.factory, self.workers, self.threads, self.load = factory, workers, threads, load

    @abstractmethod
    def map(self, fn: Callable[[Model, Job], Result], jobs: Sequence[Job], weights: Any = None) -> list[Result]:
        """`[fn(model, job) for job in jobs]` computed on the workers, in job order."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers (and anything started for them)."""

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers}, threads={self.threads})"
