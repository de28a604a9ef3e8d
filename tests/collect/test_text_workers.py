"""RL rollouts on `[scale]` workers: the same episodes wherever a chunk runs, exact old log-probs."""

import json
import pickle
import tomllib
from pathlib import Path

import pytest
import torch

from alphaloop import runner
from alphaloop.collect.text_workers import RolloutFactory, load_policy_weights, rollout, rollout_jobs
from alphaloop.envs.registry import make_env
from alphaloop.policies.lm import LMArch, LMPolicy
from alphaloop.recipe import validate_recipe
from alphaloop.scale import LocalWorkers

TINY = LMArch(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64, max_seq_len=48)


def rl_recipe(repo_root, **scale) -> dict:
    data = tomllib.loads(Path(f"{repo_root}/recipes/smoke.toml").read_text())
    data["stages"] = [s for s in data["stages"] if s["kind"] != "eval"]
    data["threads"] = 1
    if scale:
        data["scale"] = scale
    return data


def run_recipe(data: dict, run_dir: Path) -> dict:
    recipe = validate_recipe(data)
    runner.run(recipe, runner.prepare_run_dir(recipe, run_dir), show_progress=False)
    return json.loads((run_dir / "summary.json").read_text())


def rl_metrics(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "time_s"} for r in rows
            if r.get("stage") == "rl"]


def test_rollout_jobs_split_in_order_and_workers_reproduce_each_other():
    """Chunks cover the problems in order; a chunk's episodes depend on its seed and the weights only."""
    env = make_env("arithmetic", digits_max=2)
    policy = LMPolicy.build(TINY, env.alphabet, seed=0)
    problems = env.problems("train", 7, seed=1)
    jobs = rollout_jobs(problems, 3, [11, 12, 13], samples=2, temperature=1.0, top_k=0, max_new_tokens=12)
    assert [len(j.problems) for j in jobs] == [3, 2, 2] and sum((j.problems for j in jobs), []) == problems
    factory = RolloutFactory(policy, "arithmetic", {"digits_max": 2})
    pickle.loads(pickle.dumps((factory, jobs)))  # what a Ray actor receives
    weights = {k: v.detach() for k, v in policy.state_dict().items()}
    with LocalWorkers(factory, 3, 1, load_policy_weights) as a, LocalWorkers(factory, 1, 1, load_policy_weights) as b:
        first, second = a.map(rollout, jobs, weights), b.map(rollout, jobs, weights)
    groups = [g for chunk in first for g in chunk]
    assert len(groups) == 7 and all(len(g) == 2 for g in groups)
    assert [[e.action_ids for e in g] for g in groups] == [[e.action_ids for e in g] for c in second for g in c]
    # the sampler's log-probs are the trainer's model's
    episode = groups[0][0]
    ids = torch.tensor([episode.prompt_ids + episode.action_ids])
    with torch.no_grad():
        full = policy.sequence_logprobs(ids, torch.ones_like(ids))[0, len(episode.prompt_ids) - 1:]
    assert torch.allclose(full, torch.tensor(episode.logprobs), atol=1e-5)


def test_rl_stage_on_two_local_workers_is_reproducible_and_resumes(repo_root, tmp_path, kill_then_resume):
    """workers = 2 runs end to end, reproducibly, and `--resume` after a kill -9 in the rl stage
    ends with the same summary and metrics."""
    from alphaloop.recipe import dumps_toml

    data = rl_recipe(repo_root, workers=2)
    data["stages"][1]["steps"] = 8
    reference = run_recipe(data, tmp_path / "reference")
    recipe_path = tmp_path / "recipe.toml"
    recipe_path.write_text(dumps_toml(data))
    kill_then_resume(recipe_path, tmp_path / "killed", "1-rl")
    assert json.loads((tmp_path / "killed" / "summary.json").read_text()) == reference
    assert rl_metrics(tmp_path / "killed") == rl_metrics(tmp_path / "reference")


@pytest.mark.slow
def test_rl_rollouts_on_ray_match_local(repo_root, tmp_path):
    pytest.importorskip("ray")
    local = run_recipe(rl_recipe(repo_root, backend="local", workers=2), tmp_path / "local")
    on_ray = run_recipe(rl_recipe(repo_root, backend="ray", workers=2), tmp_path / "ray")
    assert local["evals"] == on_ray["evals"]
    assert rl_metrics(tmp_path / "local") == rl_metrics(tmp_path / "ray")
