"""What the preference stages (`reward_model`, `dpo`) share: where their pairs come from, and the
optimisation knobs of a pass over them (each stage sets its own learning rate and cadence).

Pairs come from a JSON Lines file (`data`, the TRL/OpenRLHF shape: prompt, chosen, rejected) or are
collected here: responses to the env's training prompts from the latest policy and/or the env's
response kinds (`source`), compared by the env's labellers, who carry the biases of real
preference data (`envs/assistant.py`). Collected pairs are written to the stage directory
(`pairs-train.jsonl`, `pairs-test.jsonl`) so the exact data can be inspected or reused.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from pydantic import Field, field_validator, model_validator

from alphaloop.collect.preferences import PreferencePair, Source, collect_pairs, read_pairs, write_pairs
from alphaloop.specs import RunSpec, StageConfig
from alphaloop.stages.context import StageContext


class PreferenceDataFields(StageConfig):
    """The pair settings of the preference stages."""

    data: str | None = Field(None, description="JSON Lines of training pairs (prompt, chosen, rejected); "
                             "default: collect `pairs` from the env's labellers")
    pairs: int = Field(2000, ge=2, le=10**6, description="training pairs to collect (without `data`)")
    test_pairs: int = Field(300, ge=2, le=10**6, description="held-out pairs, from test-split prompts")
    source: Source = Field("mixed", description="responses compared: 'policy' (two samples of the latest "
                           "policy), 'variants' (the env's response kinds), 'mixed' (one of each)")
    sample_temperature: float = Field(1.0, gt=0)
    steps: int = Field(300, ge=1, le=10**7)
    batch_size: int = Field(32, ge=1, le=65536, description="pairs per step")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr * min_lr_ratio")
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)

    @field_validator("data")
    @classmethod
    def _data_exists(cls, value: str | None) -> str | None:
        # Checked when the recipe loads: a typo must not cost the earlier stages' training.
        if value is not None and not Path(value).is_file():
            raise ValueError(f"preference data {value!r} not found (expected a JSON Lines file of prompt, chosen, "
                             "rejected)")
        return value

    @model_validator(mode="after")
    def _enough_pairs(self) -> PreferenceDataFields:
        if self.data is None and self.batch_size > self.pairs:
            raise ValueError(f"batch_size ({self.batch_size}) must not exceed pairs ({self.pairs})")
        return self

    def check(self, run: RunSpec, trained: list[str]) -> list[str]:
        if self.source != "variants" and not trained and not run.policy.pretrained:
            return [f"source: {self.source!r} samples responses from the latest trained policy, and no earlier "
                    "stage trains one (add an imitate stage first, or use source = 'variants' or data = FILE)"]
        return []


def stage_pairs(ctx: StageContext, cfg: PreferenceDataFields, policy) -> tuple[list[PreferencePair], list]:
    """(training pairs, held-out (problem, pair) list), collected from the stage's own seeds (the same on
    every resume) and written to the stage directory."""
    env, test_env = ctx.make_env("train", seed=ctx.seed("env")), ctx.make_env("test")
    generator = torch.Generator().manual_seed(ctx.seed("sample"))
    if cfg.data is not None:
        train = read_pairs(cfg.data)
    else:
        problems = [env.sample_problem(random.Random(ctx.seed("prompt", i)), "train") for i in range(cfg.pairs)]
        train = collect_pairs(env, problems, random.Random(ctx.seed("label")), cfg.source, policy,
                              cfg.sample_temperature, generator)
    # The test split has a few dozen distinct requests: each comes back with other response pairs.
    test_problems = [test_env.sample_problem(random.Random(ctx.seed("test-prompt", i)), "test")
                     for i in range(cfg.test_pairs)]
    test = collect_pairs(test_env, test_problems, random.Random(ctx.seed("test-label")), cfg.source, policy,
                         cfg.sample_temperature, generator)
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    write_pairs(ctx.stage_dir / "pairs-train.jsonl", train)
    write_pairs(ctx.stage_dir / "pairs-test.jsonl", test)
    return train, list(zip(test_problems, test))
