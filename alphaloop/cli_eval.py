"""`alphaloop eval RUN_DIR`: evaluate a finished (or partial) run's policies on demand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from alphaloop.checkpoint import write_json_atomic
from alphaloop.errors import UserError
from alphaloop.evals.evaluate import parse_decoder
from alphaloop.seeding import derive_seed


def eval_run(run_dir: Path, splits: list[str], decoders: list[str], policies: list[str],
             problems: int) -> list[dict[str, Any]]:
    from alphaloop.envs.registry import make_env
    from alphaloop.evals.evaluate import eval_problem_seed, evaluate
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.runner import load_run_recipe

    recipe = load_run_recipe(run_dir)
    torch.set_num_threads(recipe.threads)
    for spec in decoders:
        try:
            parse_decoder(spec)
        except ValueError as exc:
            raise UserError(f"--decoder: {exc}") from None
    trained = {}
    for index, stage in enumerate(recipe.stages):
        result = run_dir / "stages" / f"{index}-{stage.name}" / "result.json"
        if result.is_file() and "policy_dir" in json.loads(result.read_text()):
            trained[stage.name] = run_dir / json.loads(result.read_text())["policy_dir"]
    records = []
    for name in policies:
        if name == "latest":
            if not trained:
                raise UserError(f"{run_dir} has no trained policy yet")
            name = list(trained)[-1]
        if name != "expert" and name not in trained:
            raise UserError(f"--policy {name!r}: expected expert or one of {', '.join(trained) or '(none trained)'}")
        policy = None if name == "expert" else LMPolicy.load(trained[name])
        for split in splits:
            if split not in ("train", "test", "heldout"):
                raise UserError(f"--split {split!r}: expected train, test or heldout")
            env = make_env(recipe.env.name, split=split, **recipe.env.knobs)
            items = env.problems(split, problems, seed=eval_problem_seed(recipe.seed, split))
            for record in evaluate(name, policy, env, items, decoders, seed=derive_seed(recipe.seed, "cli-eval", name,
                                                                                         split)):
                records.append({"stage": "cli-eval", "step": None, **record})
    out = run_dir / "evals"
    out.mkdir(exist_ok=True)
    write_json_atomic(out / "latest.json", records)
    return records
