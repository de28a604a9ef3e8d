"""What a stage sees of its run: `StageContext`.

The runner builds one per run and points it at each stage in turn (`index`). A stage reads its
settings from the recipe (`ctx.recipe`, a `RunSpec`), derives every seed from (recipe seed, stage,
keys) with `ctx.seed`, finds the policies earlier stages trained, and writes its checkpoints,
metrics and final policy through the context, so a resumed run finds them again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress

from alphaloop import checkpoint as ckpt
from alphaloop.errors import UserError
from alphaloop.runlog import MetricsLogger
from alphaloop.seeding import derive_seed, rng_state, set_rng_state
from alphaloop.specs import RunSpec, StageConfig

console = Console(stderr=True)


@dataclass
class StageContext:
    """The run directory, recipe, metrics log and progress display, pointed at stage `index`."""

    run_dir: Path
    recipe: RunSpec
    logger: MetricsLogger
    progress: Progress
    index: int = 0
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # completed stage name -> result
    started: float = field(default_factory=time.time)

    @property
    def stage(self) -> StageConfig:
        return self.recipe.stages[self.index]

    @property
    def stage_dir(self) -> Path:
        return self.run_dir / "stages" / f"{self.index}-{self.stage.name}"

    def seed(self, *parts: Any) -> int:
        """A seed for this stage and `parts` (e.g. ("batch", step)): the same on every resume."""
        return derive_seed(self.recipe.seed, self.index, self.stage.name, *parts)

    def make_env(self, split: str = "train", seed: int | None = None, **overrides: Any):
        """The recipe's env for `split`, with `overrides` of its knobs (a curriculum's current setting)."""
        from alphaloop.envs.registry import make_env

        try:
            return make_env(self.recipe.env.name, split=split, seed=seed, **(self.recipe.env.knobs | overrides))
        except (ValueError, TypeError, ImportError) as exc:
            raise UserError(f"env {self.recipe.env.name!r}: {exc}") from None

    # -- policies -------------------------------------------------------------------------
    def policy_dir(self, name: str) -> Path:
        """Final policy of a completed stage, by stage name."""
        if name not in self.results or "policy_dir" not in self.results[name]:
            trained = [n for n, r in self.results.items() if "policy_dir" in r]
            raise UserError(f"no trained policy named {name!r} (available: expert, {', '.join(trained) or 'none'})")
        return self.run_dir / self.results[name]["policy_dir"]

    def latest_policy_name(self) -> str | None:
        trained = [n for n, r in self.results.items() if "policy_dir" in r]
        return trained[-1] if trained else None

    def initial_policy(self, start_from: str | None = None):
        """The policy a training stage starts from: stage `start_from`'s, by default the previous
        trained stage's, else a fresh one (an LM, or for `policy.kind = 'net'` a game net), seeded
        from the recipe seed only. `start_from = "pretrained"` is the recipe's `[policy] pretrained` model even
        after other stages trained (so several stages can start from it)."""
        previous = None if start_from == "pretrained" else start_from or self.latest_policy_name()
        if self.recipe.policy.kind == "net":
            return self._initial_net(previous)
        from alphaloop.policies.lm import LMPolicy

        if previous is not None:
            return LMPolicy.load(self.policy_dir(previous))
        spec = self.recipe.policy
        if spec.pretrained:
            try:
                return LMPolicy.from_pretrained(spec.pretrained)
            except (OSError, ValueError, KeyError) as exc:
                raise UserError(f"policy.pretrained {spec.pretrained!r}: cannot load a causal LM from it: "
                                f"{type(exc).__name__}: {exc}") from None
        return self.fresh_policy(spec.arch, derive_seed(self.recipe.seed, "init"))

    def fresh_policy(self, arch, seed: int):
        """A freshly built LM policy of size `arch` (an `LMArch`) for this run's env: over the env's alphabet,
        and with the position rule the env asks for (arithmetic's positions="coupled"), which the policy
        saves in its config so every later load uses it."""
        from alphaloop.policies.lm import LMPolicy

        env = self.make_env("train", seed=0)
        return LMPolicy.build(arch, alphabet=env.alphabet, seed=seed, positions=env.position_rule,
                              position_offsets=env.position_offsets)

    def _initial_net(self, previous: str | None):
        from alphaloop.games.registry import game_class
        from alphaloop.policies.nets import NetConfig, PolicyValueNet, build_net

        if previous is not None:
            return PolicyValueNet.load(self.policy_dir(previous))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.recipe.seed, "init"))
            return build_net(self.recipe.policy.net or NetConfig(), game_class(self.recipe.env.name)).eval()

    # -- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.stage_dir / "checkpoints"

    def save_checkpoint(self, step: int, policy, trainer_state: dict[str, Any], keep: int = 2) -> None:
        """Model (HF format) + trainer state (optimizer, RNGs, step, cursors), atomically."""

        def fill(tmp: Path) -> None:
            policy.save(tmp / "policy")
            torch.save({"step": step, "rng": rng_state(), **trainer_state}, tmp / "trainer.pt")

        ckpt.write_atomic_dir(self.checkpoint_root / f"step-{step:07d}", fill, meta={"step": step})
        ckpt.prune(self.checkpoint_root, keep)

    def save_final_policy(self, save) -> str:
        """Write the stage's final policy atomically with `save(dir)`; return its path within the run."""
        policy_dir = self.stage_dir / "policy"
        ckpt.write_atomic_dir(policy_dir, save)
        return str(policy_dir.relative_to(self.run_dir))

    def load_checkpoint(self) -> tuple[Path, dict[str, Any]] | None:
        """Newest good checkpoint of this stage (policy dir, trainer state), RNGs restored; cuts the log back."""
        path = ckpt.latest_good(self.checkpoint_root, warn=lambda m: console.print(f"[yellow]{m}"))
        step = -1
        state = None
        if path is not None:
            state = torch.load(path / "trainer.pt", weights_only=False)
            set_rng_state(state["rng"])
            step = state["step"]
        index = self.index
        self.logger.truncate(lambda r: r.get("stage_index", -1) < index or (
            r.get("stage_index") == index and r.get("step", 0) <= step))
        return None if path is None else (path / "policy", state)

    # -- progress -------------------------------------------------------------------------
    def log(self, step: int, **metrics: Any) -> None:
        record = {"stage": self.stage.name, "stage_index": self.index, "step": step,
                  "time_s": round(time.time() - self.started, 3), **metrics}
        self.logger.log(record)

    def new_progress_task(self, total: int, completed: int = 0) -> int:
        return self.progress.add_task(f"{self.index}:{self.stage.name}", total=total, completed=completed, info="")
