"""AlphaZero self-play through `alphaloop.scale`: chunking and seeds, local == Ray, resume after kill -9."""

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from alphaloop import runner
from alphaloop.collect.selfplay import play_job, self_play_jobs
from alphaloop.errors import UserError
from alphaloop.games.registry import game_class
from alphaloop.policies.nets import NetConfig, PolicyValueNet
from alphaloop.recipe import dumps_toml, validate_recipe
from alphaloop.scale import LocalWorkers
from alphaloop.search import MCTSConfig

TIME_KEYS = {"time_s", "positions_per_s", "selfplay_s", "train_s"}
SEARCH = MCTSConfig(num_simulations=8, dirichlet_fraction=0.25, dirichlet_alpha=1.0)


def alphazero_recipe(repo_root: str, rounds: int = 3, **scale) -> dict:
    """tictactoe-smoke's alphazero stage alone (a fresh net), `rounds` rounds, checkpoint every round."""
    data = tomllib.loads(Path(f"{repo_root}/recipes/tictactoe-smoke.toml").read_text())
    data["stages"] = [s for s in data["stages"] if s["kind"] == "alphazero"]
    data["stages"][0].update(rounds=rounds, eval_every=rounds, checkpoint_every=1)
    data["scale"] = scale
    return data


def run_recipe(data: dict, run_dir: Path) -> tuple[str, list]:
    recipe = validate_recipe(data)
    runner.run(recipe, runner.prepare_run_dir(recipe, run_dir), show_progress=False)
    return (run_dir / "summary.json").read_text(), metrics_without_time(run_dir)


def metrics_without_time(run_dir: Path) -> list:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS} for line in lines]


def records_key(records) -> list:
    return [(r.actions, r.returns, [p.tolist() for p in r.policies]) for r in records]


def tiny_net() -> PolicyValueNet:
    torch.manual_seed(0)
    cls = game_class("tictactoe")
    return PolicyValueNet(NetConfig(channels=8, blocks=1, hidden=16), cls.observation_shape, cls.num_actions).eval()


def test_self_play_jobs_split_games_with_distinct_seeds():
    jobs = self_play_jobs("tictactoe", 10, 3, SEARCH, 4, seed=123)
    assert [j.num_games for j in jobs] == [4, 3, 3]
    assert len({j.seed for j in jobs}) == 3
    assert jobs == self_play_jobs("tictactoe", 10, 3, SEARCH, 4, seed=123)
    assert [j.seed for j in self_play_jobs("tictactoe", 10, 3, SEARCH, 4, seed=124)] != [j.seed for j in jobs]
    assert len(self_play_jobs("tictactoe", 2, 4, SEARCH, 4, seed=0)) == 2  # no empty chunks


def test_local_workers_play_each_chunk_as_a_direct_call_would():
    net = tiny_net()
    jobs = self_play_jobs("tictactoe", 6, 2, SEARCH, 4, seed=7)
    with LocalWorkers(lambda: PolicyValueNet(net.config, net.observation_shape, net.num_actions), 2) as workers:
        chunks = workers.map(play_job, jobs, weights=net.state_dict())
    assert [len(c) for c in chunks] == [3, 3]
    for job, chunk in zip(jobs, chunks):
        assert records_key(chunk) == records_key(play_job(net, job))
        for record in chunk:
            assert record.returns[0] == -record.returns[1]
            assert all(np.isclose(p.sum(), 1.0) for p in record.policies)
    assert records_key(chunks[0]) != records_key(chunks[1])  # different seeds, different games


def test_ray_backend_gives_identical_results_to_local(repo_root, tmp_path):
    """Same seed, 2 workers: local (in-process, serial) and Ray (a local Ray started on demand, two
    actors) must write the same summary.json and the same metrics, except wall times."""
    ray = pytest.importorskip("ray")
    local = run_recipe(alphazero_recipe(repo_root, workers=2), tmp_path / "local")
    on_ray = run_recipe(alphazero_recipe(repo_root, backend="ray", workers=2), tmp_path / "ray")
    assert on_ray == local
    assert not ray.is_initialized()  # the Ray started for the stage was shut down with it
    assert json.loads(local[0])["stages"][0]["final"]["loss"] > 0
    single = run_recipe(alphazero_recipe(repo_root, workers=1), tmp_path / "single")
    assert single[1] != local[1]  # the split (and its seeds) is part of the experiment


def test_ray_backend_without_ray_fails_the_stage_clearly(repo_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    recipe = validate_recipe(alphazero_recipe(repo_root, backend="ray", workers=2))
    with pytest.raises(UserError, match="pip install 'alphaloop"):
        runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / "run"), show_progress=False)


def test_scale_address_needs_the_ray_backend(repo_root):
    with pytest.raises(UserError, match="scale: .*only used with backend = 'ray'"):
        validate_recipe(alphazero_recipe(repo_root, address="auto"))
    with pytest.raises(UserError, match="scale.workers"):
        validate_recipe(alphazero_recipe(repo_root, workers=0))


@pytest.mark.parametrize("backend", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_resume_after_kill_9_with_two_workers_matches(repo_root, tmp_path, backend, kill_then_resume):
    if backend == "ray":
        pytest.importorskip("ray")
    rounds = 8
    data = alphazero_recipe(repo_root, rounds=rounds, backend=backend, workers=2)
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(dumps_toml(data))
    kill_then_resume(recipe_path, tmp_path / "killed", "0-alphazero")
    # The uninterrupted reference runs in-process on the local backend: same split, same seeds.
    summary, metrics = run_recipe(alphazero_recipe(repo_root, rounds=rounds, workers=2), tmp_path / "ref")
    assert (tmp_path / "killed" / "summary.json").read_text() == summary
    assert metrics_without_time(tmp_path / "killed") == metrics


def test_scale_without_an_alphazero_stage_is_an_error(repo_root):
    """[scale] spreads self-play and RL rollouts only: on a recipe with nothing to spread it is a
    clear error, not a no-op."""
    data = tomllib.loads(Path(f"{repo_root}/recipes/smoke.toml").read_text())
    data["stages"] = [stage for stage in data["stages"] if stage["kind"] != "rl"]
    data["stages"][-1]["policies"] = ["expert", "imitate"]
    data["scale"] = {"backend": "ray", "workers": 2}
    with pytest.raises(UserError, match="scale: .*spreads the work of 'rl' and 'alphazero' stages only"):
        validate_recipe(data)
