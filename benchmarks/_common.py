"""What the speed benchmarks share: the machine they ran on, the quickstart's setup, and an
imitation-trained quickstart policy that both sides of a paired comparison start from.

Why a trained policy: an untrained one answers nothing right (every reward 0, so a GRPO step
changes no weight) and stops at random lengths, so timing it measures overhead and flatters
whichever side drops finished rows; users run RL and sampling on a policy the `imitate` stage
trained. The policy here is the quickstart's (its env knobs, its Llama arch, its `imitate`
stage's batch and learning rate), trained by that stage for a few hundred steps instead of 600,
once, and kept on disk (`cache_dir()`) keyed by everything that decides its weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "recipes" / "quickstart.toml"
IMITATION_STEPS = 300


def machine() -> str:
    """The CPU (model name from /proc/cpuinfo), its cores, whether torch sees native bfloat16
    (AMX tiles, AVX512-BF16), and the torch version: every benchmark prints it first."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = []
    for name, probe in (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported")):
        try:
            flags.append(f"{name} {'yes' if getattr(torch.cpu, probe)() else 'no'}")
        except (AttributeError, RuntimeError):
            flags.append(f"{name} unknown")
    return f"{model}, {os.cpu_count()} cores, {', '.join(flags)}, torch {torch.__version__}"


@dataclass(frozen=True)
class Quickstart:
    """The quickstart recipe's env, policy arch and stage settings that the benchmarks reuse."""

    env: dict[str, Any]
    arch: dict[str, Any]
    max_new_tokens: int           # its rl stage's default: env.max_completion_chars + 1
    prompts: int                  # rl: prompts_per_step
    group: int                    # rl: group_size
    rl_lr: float
    rl_settings: dict[str, Any] = field(default_factory=dict)  # the rl stage's other knobs, as resolved
    imitate_batch: int = 64
    imitate_lr: float = 3e-3
    seed: int = 0


def quickstart() -> Quickstart:
    from alphaloop.envs.registry import make_env
    from alphaloop.recipe import load_recipe

    recipe = load_recipe(QUICKSTART)
    imitate = next(s for s in recipe.stages if s.kind == "imitate")
    rl = next(s for s in recipe.stages if s.kind == "rl")
    env = {"name": recipe.env.name, "knobs": dict(recipe.env.knobs)}
    max_new = rl.max_new_tokens or make_env(env["name"], split="train", seed=0, **env["knobs"]).max_completion_chars + 1
    return Quickstart(env=env, arch=recipe.policy.arch.model_dump(), max_new_tokens=max_new,
                      prompts=rl.prompts_per_step, group=rl.group_size, rl_lr=rl.lr,
                      rl_settings=rl.model_dump(exclude={"kind", "name"}), imitate_batch=imitate.batch_size,
                      imitate_lr=imitate.lr, seed=recipe.seed)


def imitation_recipe(steps: int, threads: int, arch: dict[str, Any] | None = None, seed: int | None = None):
    """The quickstart with only its `imitate` stage, `steps` long, no evaluation to speak of."""
    from alphaloop.recipe import validate_recipe

    q = quickstart()
    return validate_recipe({
        "name": "bench-imitate", "seed": q.seed if seed is None else seed, "threads": threads, "env": q.env,
        "policy": {"kind": "lm", "arch": arch or q.arch},
        "stages": [{"kind": "imitate", "steps": steps, "batch_size": q.imitate_batch, "lr": q.imitate_lr,
                    "warmup_steps": min(50, steps // 4), "eval_every": 10**6, "eval_problems": 1,
                    "checkpoint_every": 10**6}],
    })


def cache_dir() -> Path:
    """Where trained benchmark policies are kept: $ALPHALOOP_BENCH_CACHE, else <tmp>/alphaloop-bench."""
    return Path(os.environ.get("ALPHALOOP_BENCH_CACHE") or Path(tempfile.gettempdir()) / "alphaloop-bench")


def imitation_policy(steps: int = IMITATION_STEPS, threads: int = 2, arch: dict[str, Any] | None = None,
                     seed: int | None = None, cache: Path | None = None) -> Path:
    """The HF-format directory of the quickstart policy after `steps` imitation steps: trained by
    the `imitate` stage on first use, then read from the cache. The key leaves out the thread
    count (it changes fp32 rounding, not what the policy has learnt)."""
    from alphaloop import runner

    recipe = imitation_recipe(steps, threads, arch, seed)
    key_data = recipe.model_dump(mode="json", exclude={"threads"}) | {"torch": torch.__version__}
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:16]
    target = (cache or cache_dir()) / f"imitate-{steps}-{key}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        run_dir = runner.prepare_run_dir(recipe, Path(tmp) / "run")
        summary = runner.run(recipe, run_dir, show_progress=False)
        staged = Path(tmp) / "policy"
        shutil.copytree(run_dir / summary["stages"][0]["policy_dir"], staged)
        (staged / "bench.json").write_text(json.dumps({"steps": steps, "final": summary["stages"][0]["final"]}))
        try:
            staged.rename(target)  # atomic: another process may have finished first
        except OSError:
            if not (target / "config.json").is_file():
                raise
    return target


def trl_missing() -> bool:
    """True (after saying how to install it) when TRL, a benchmark-only dependency, is absent."""
    import importlib.util

    if importlib.util.find_spec("trl") is not None:
        return False
    print("TRL is not installed; it is a benchmark-only dependency:\n"
          "    .venv/bin/pip install -c constraints.txt trl      (or: pip install -e '.[bench]')")
    return True


def step_timer(times: list[float]):
    """A transformers TrainerCallback appending each optimizer step's seconds (on_step_begin ->
    on_step_end) to `times`: how the TRL side of a paired benchmark is timed."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.began)

    return StepTimer()


def paired_parser(description: str):
    """The arguments every paired side-by-side benchmark takes: threads, rounds, timed and warmup steps."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each run")
    return parser
