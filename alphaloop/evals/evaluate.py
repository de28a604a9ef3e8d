"""Evaluate policies x decoders on fixed problem sets.

Decoders, spelled as on the CLI:
  greedy      temperature-0 decoding (for the stochastic expert: one demonstration)
  sample      one sample at the eval temperature; reported as the mean over all drawn samples
  maj@k       majority vote over the final answers of k samples (self-consistency, Wang et al. 2023)
  pass@k      unbiased pass@k from n >= k samples (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)

All sampled decoders share one set of n = max(k) samples per problem, so a table of decoders
costs one generation pass, and maj@k uses the first k of the same samples.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import torch

from alphaloop.collect import expert_episodes, policy_episodes
from alphaloop.episode import Episode
from alphaloop.evals.metrics import majority_vote, pass_at_k

DECODER_PATTERN = re.compile(r"^(greedy|sample|maj@(\d+)|pass@(\d+))$")


def parse_decoder(spec: str) -> tuple[str, int]:
    """'maj@8' -> ('maj', 8); 'greedy' -> ('greedy', 1). Raises ValueError naming what is allowed."""
    match = DECODER_PATTERN.match(spec.strip())
    if not match:
        raise ValueError(f"unknown decoder {spec!r}: expected greedy, sample, maj@K or pass@K (K >= 1)")
    name = spec.strip().split("@")[0]
    k = int(spec.split("@")[1]) if "@" in spec else 1
    if k < 1:
        raise ValueError(f"decoder {spec!r}: K must be >= 1")
    return name, k


def samples_needed(decoders: Sequence[str]) -> int:
    return max([k for name, k in map(parse_decoder, decoders) if name != "greedy"], default=0)


def decoder_metrics(name: str, k: int, problems: Sequence, groups: list[list[Episode]]) -> dict[str, float]:
    """Accuracy (and pass@k) of one decoder from already-collected, scored episode groups."""
    n_problems = len(problems)
    if name in ("greedy",):
        return {"accuracy": sum(g[0].success for g in groups) / n_problems}
    if name == "sample":
        return {"accuracy": sum(sum(e.success for e in g) / len(g) for g in groups) / n_problems}
    if name == "maj":
        hits = 0
        for problem, group in zip(problems, groups):
            vote = majority_vote([e.info.get("answer") for e in group[:k]])
            hits += vote is not None and vote == problem.answer
        return {"accuracy": hits / n_problems}
    if name == "pass":
        n = len(groups[0])
        passk = sum(pass_at_k(n, sum(e.success for e in g), k) for g in groups) / n_problems
        pass1 = sum(pass_at_k(n, sum(e.success for e in g), 1) for g in groups) / n_problems
        return {"accuracy": passk, f"pass@{k}": passk, "pass@1": pass1}
    raise ValueError(f"unknown decoder {name!r}")


def evaluate(
    policy_name: str,
    policy,
    env,
    problems: Sequence,
    decoders: Sequence[str],
    seed: int,
    temperature: float = 1.0,
    batch_size: int = 256,
) -> list[dict[str, Any]]:
    """One record {policy, split, decoder, metrics} per decoder. `policy` None means the env's expert."""
    parsed = [parse_decoder(d) for d in decoders]
    n = samples_needed(decoders)
    greedy_groups = sampled_groups = None
    if policy is None:
        rng = random.Random(seed)
        if any(name == "greedy" for name, _ in parsed):
            greedy_groups = expert_episodes(env, problems, 1, rng)
        if n:
            sampled_groups = expert_episodes(env, problems, n, rng)
    else:
        generator = torch.Generator().manual_seed(seed)
        if any(name == "greedy" for name, _ in parsed):
            greedy_groups = policy_episodes(policy, env, problems, 1, temperature=0.0, batch_size=batch_size)
        if n:
            sampled_groups = policy_episodes(policy, env, problems, n, temperature=temperature,
                                             generator=generator, batch_size=batch_size)
    records = []
    for spec, (name, k) in zip(decoders, parsed):
        groups = greedy_groups if name == "greedy" else sampled_groups
        metrics = decoder_metrics(name, k, problems, groups)
        metrics["n"] = len(problems)
        records.append({"policy": policy_name, "split": env.split, "decoder": spec,
                        "metrics": {key: round(value, 6) for key, value in metrics.items()}})
    return records
