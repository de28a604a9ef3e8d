"""The Workers interface: splitting, the local backend, backend selection and a clear error without Ray."""

import sys
from functools import partial

import pytest
import torch

from alphaloop.errors import UserError
from alphaloop.scale import LocalWorkers, make_workers, split_evenly, worker_threads


@pytest.mark.parametrize(("total", "parts", "sizes"), [
    (10, 3, [4, 3, 3]), (8, 2, [4, 4]), (2, 4, [1, 1]), (0, 3, []), (5, 1, [5]),
])
def test_split_evenly(total, parts, sizes):
    assert split_evenly(total, parts) == sizes
    assert sum(sizes) == total


@pytest.mark.parametrize(("total", "parts", "message"), [(-1, 2, "total"), (4, 0, "parts"), (4, 1.5, "parts")])
def test_split_evenly_rejects_bad_arguments(total, parts, message):
    with pytest.raises(ValueError, match=message):
        split_evenly(total, parts)


def test_worker_threads_share_the_run_threads():
    assert worker_threads(2, 1) == 2
    assert worker_threads(2, 2) == 1
    assert worker_threads(2, 4) == 1
    assert worker_threads(8, 3) == 2
    assert worker_threads(2, 2, override=3) == 3


def scaled_sum(model: torch.nn.Linear, job: float) -> tuple[float, int]:
    """A job: the model's weight times `job`, and the torch thread count it ran with."""
    return float(model.weight.detach().sum()) * job, torch.get_num_threads()


def test_local_workers_load_weights_into_a_copy_and_keep_job_order():
    trainer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        trainer.weight.fill_(1.0)
    before = torch.get_num_threads()
    with LocalWorkers(partial(torch.nn.Linear, 2, 1, bias=False), workers=3, threads=2) as workers:
        out = workers.map(scaled_sum, [1.0, 2.0, 3.0], weights=trainer.state_dict())
        assert out == [(2.0, 2), (4.0, 2), (6.0, 2)]
        with torch.no_grad():
            trainer.weight.fill_(0.5)  # the workers' copy changes only when new weights are sent
        assert [v for v, _ in workers.map(scaled_sum, [1.0])] == [2.0]
        assert [v for v, _ in workers.map(scaled_sum, [1.0], weights=trainer.state_dict())] == [1.0]
    assert torch.get_num_threads() == before


def test_local_workers_reject_bad_arguments():
    with pytest.raises(ValueError, match="workers"):
        LocalWorkers(partial(torch.nn.Linear, 2, 1), workers=0)
    with pytest.raises(ValueError, match="threads"):
        LocalWorkers(partial(torch.nn.Linear, 2, 1), threads=0)
    with pytest.raises(TypeError, match="factory"):
        LocalWorkers("not callable")


def test_make_workers_picks_the_backend_and_explains_mistakes():
    factory = partial(torch.nn.Linear, 2, 1)
    assert isinstance(make_workers(factory), LocalWorkers)
    with pytest.raises(UserError, match="scale.backend"):
        make_workers(factory, backend="dask")
    with pytest.raises(UserError, match="needs scale.backend = 'ray'"):
        make_workers(factory, address="auto")


def test_ray_backend_without_ray_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'alphaloop\[ray\]'"):
        make_workers(partial(torch.nn.Linear, 2, 1), backend="ray", workers=2)


def test_unreachable_cluster_address_fails_fast():
    pytest.importorskip("ray")
    with pytest.raises(UserError, match="no Ray cluster answers there"):
        make_workers(partial(torch.nn.Linear, 2, 1), backend="ray", address="127.0.0.1:1")


def failing_job(model, job):
    raise ValueError(f"job {job} failed")


@pytest.mark.slow
def test_ray_workers_on_a_running_ray():
    """An already initialised Ray is used and left running; weights reach every actor; job order is
    kept whichever actor finishes first; an error in a job reaches the caller with its type."""
    ray = pytest.importorskip("ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test functions travel by value
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=96 * 1024 * 1024)
    try:
        trainer = torch.nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            trainer.weight.fill_(1.0)
        with make_workers(partial(torch.nn.Linear, 2, 1, bias=False), backend="ray", workers=2) as workers:
            out = workers.map(scaled_sum, [1.0, 2.0, 3.0, 4.0, 5.0], weights=trainer.state_dict())
            assert out == [(2.0 * k, 1) for k in range(1, 6)]
            with torch.no_grad():
                trainer.weight.fill_(0.5)
            assert [v for v, _ in workers.map(scaled_sum, [1.0], weights=trainer.state_dict())] == [1.0]
            # Actor 1 had no job when the new weights came; it still plays with them now.
            assert [v for v, _ in workers.map(scaled_sum, [1.0, 1.0])] == [1.0, 1.0]
            with pytest.raises(ValueError, match="job 3 failed"):
                workers.map(failing_job, [3])
        assert ray.is_initialized()
    finally:
        ray.shutdown()
