"""Preference pairs: two responses to one prompt, the one a labeller preferred first.

On disk a pair set is JSON Lines, one pair per line, in the shape TRL's `RewardTrainer` /
`DPOTrainer` and OpenRLHF read, so users can bring their own pairs:

    {"prompt": "add 23 and 45. ", "chosen": "68", "rejected": "sure! 68 hope this helps!"}

with optional fields `chosen_score` / `rejected_score` (e.g. a labeller's rating) and `meta`
(anything else: kept, not read). `collect_pairs` makes pairs the way RLHF data is made: responses
from a policy (and/or a spread of response kinds the env offers), compared by the env's labellers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from alphaloop.checkpoint import write_text_atomic
from alphaloop.collect.text import policy_episodes
from alphaloop.errors import UserError

Source = Literal["policy", "variants", "mixed"]


@dataclass
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    chosen_score: float | None = None
    rejected_score: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def write_pairs(path: Path, pairs: Sequence[PreferencePair]) -> None:
    """Write `pairs` as JSON Lines (optional fields left out when empty), atomically."""
    lines = []
    for pair in pairs:
        record = {k: v for k, v in asdict(pair).items() if v is not None and v != {}}
        lines.append(json.dumps(record, sort_keys=True))
    write_text_atomic(Path(path), "".join(line + "\n" for line in lines))


def read_pairs(path: str | Path) -> list[PreferencePair]:
    """Read a JSON Lines pair file; a bad line is a UserError naming the file, the line and the field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"preference data {path}: file not found (expected JSON Lines with prompt, chosen, "
                        "rejected)")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}: line {number}: expected an object with prompt, chosen, rejected")
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(record.get(key), str):
                raise UserError(f"{path}: line {number}: field {key!r} must be a string, got {record.get(key)!r}")
        extra = set(record) - {"prompt", "chosen", "rejected", "chosen_score", "rejected_score", "meta"}
        if extra:
            raise UserError(f"{path}: line {number}: unknown field(s) {sorted(extra)}; allowed: prompt, chosen, "
                            "rejected, chosen_score, rejected_score, meta")
        pairs.append(PreferencePair(**record))
    if not pairs:
        raise UserError(f"preference data {path}: no pairs in the file")
    return pairs


def collect_pairs(env, problems: Sequence, rng: random.Random, source: Source = "mixed", policy=None,
                  temperature: float = 1.0, generator: torch.Generator | None = None) -> list[PreferencePair]:
    """One labelled pair per problem. Responses: two samples of `policy` ("policy"), two distinct
    response kinds the env offers (`env.variants`: ideal, polite, padded, wrong, ...; "variants"),
    or one of each ("mixed", the default: what the policy does now, and what it might do later).
    The env's labellers (`env.label`) decide which is chosen; the pair records P(first chosen)."""
    if source != "variants" and policy is None:
        raise ValueError(f"source {source!r} samples responses from a policy: give one")
    samples: list[list[str]] = [[] for _ in problems]
    if source != "variants":
        groups = policy_episodes(policy, env, problems, 2 if source == "policy" else 1, temperature=temperature,
                                 generator=generator)
        samples = [[e.completion for e in group] for group in groups]
    pairs = []
    for problem, drawn in zip(problems, samples):
        if source == "variants":
            drawn = rng.sample(env.variants(problem, rng), 2)
        elif source == "mixed":
            drawn = [drawn[0], rng.choice([v for v in env.variants(problem, rng) if v != drawn[0]])]
            rng.shuffle(drawn)
        chosen, rejected, p_first = env.label(problem, drawn[0], drawn[1], rng)
        pairs.append(PreferencePair(problem.prompt, chosen, rejected, meta={"p_first": round(p_first, 6),
                                                                             **problem.meta}))
    return pairs
