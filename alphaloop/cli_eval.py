"""`alphaloop eval RUN_DIR`: evaluate a finished (or partial) run's policies on demand.

Every call writes its records to a new file, RUN_DIR/evals/eval-NNN.json, and never overwrites an
earlier one; where the run directory cannot be written, it says so before computing anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from alphaloop.checkpoint import write_json_atomic
from alphaloop.errors import UserError
from alphaloop.evals.evaluate import parse_decoder
from alphaloop.rundir import trained_policies
from alphaloop.seeding import derive_seed


def reserve_result_file(run_dir: Path) -> Path:
    """A new, empty RUN_DIR/evals/eval-NNN.json, created exclusively (two evals never share a file);
    fails here, before any work, when the run directory is not writable."""
    out = run_dir / "evals"
    try:
        out.mkdir(exist_ok=True)
        number = 1 + max((int(p.stem[5:]) for p in out.glob("eval-*.json") if p.stem[5:].isdigit()), default=0)
        while True:
            path = out / f"eval-{number:03d}.json"
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                return path
            except FileExistsError:
                number += 1
    except OSError as exc:
        raise UserError(f"{run_dir}: cannot write the eval results there ({exc.strerror or exc}); nothing was "
                        "evaluated (make the run directory writable, or copy it somewhere writable)") from None


def eval_run(run_dir: Path, splits: list[str], decoders: list[str], policies: list[str],
             problems: int) -> tuple[list[dict[str, Any]], Path]:
    """Evaluate `policies` x `splits` x `decoders`; returns the records and the file they were written to."""
    from alphaloop.envs.registry import make_env
    from alphaloop.evals.evaluate import eval_problem_seed, evaluate
    from alphaloop.games.registry import game_names
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.runner import load_run_recipe

    recipe = load_run_recipe(run_dir)
    if recipe.env.name in game_names():
        raise UserError(f"{run_dir} plays the board game {recipe.env.name!r}: `alphaloop eval` evaluates language "
                        "models on text envs; evaluate game nets with a game_eval stage, or play them with "
                        "`alphaloop move` / `alphaloop play`")
    if recipe.threads != "auto":
        torch.set_num_threads(recipe.threads)
    for spec in decoders:
        try:
            parse_decoder(spec)
        except ValueError as exc:
            raise UserError(f"--decoder: {exc}") from None
    for split in splits:
        if split not in ("train", "test", "heldout"):
            raise UserError(f"--split {split!r}: expected train, test or heldout")
    trained = trained_policies(run_dir, str(run_dir))
    reward_models = list(trained_policies(run_dir, str(run_dir), "reward_model_dir").values())
    reward_model = None
    if any(parse_decoder(spec)[0] == "rm" for spec in decoders):
        if not reward_models:
            raise UserError(f"--decoder rm@K: picks by a reward model, and {run_dir} has no finished reward_model "
                            "stage")
        from alphaloop.scorers.reward_model import RewardEnsemble

        reward_model = RewardEnsemble.load(reward_models[-1])
    names = []
    for name in policies:
        if name == "latest":
            if not trained:
                raise UserError(f"{run_dir} has no trained policy yet")
            name = list(trained)[-1]
        if name != "expert" and name not in trained:
            raise UserError(f"--policy {name!r}: expected expert or one of {', '.join(trained) or '(none trained)'}")
        names.append(name)
    path = reserve_result_file(run_dir)
    records = []
    try:
        for name in names:
            policy = None if name == "expert" else LMPolicy.load(trained[name])
            for split in splits:
                env = make_env(recipe.env.name, split=split, **recipe.env.knobs)
                items = env.problems(split, problems, seed=eval_problem_seed(recipe.seed, split))
                seed = derive_seed(recipe.seed, "cli-eval", name, split)
                records += [{"stage": "cli-eval", "step": None, **record}
                            for record in evaluate(name, policy, env, items, decoders, seed=seed,
                                                   reward_model=reward_model)]
    except BaseException:
        path.unlink(missing_ok=True)   # no empty result file left by a failed or interrupted eval
        raise
    write_json_atomic(path, records)
    return records, path
