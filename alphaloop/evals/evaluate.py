"""Evaluate policies x decoders on fixed problem sets.

Decoders, spelled as on the CLI:
  greedy      temperature-0 decoding (for the stochastic expert: one demonstration)
  sample      one sample at the eval temperature; reported as the mean over all drawn samples
  maj@k       majority vote over the final answers of k samples (self-consistency, Wang et al. 2023)
  pass@k      unbiased pass@k from n >= k samples (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)
  pass^k      reliability: all of k tries succeed, unbiased from n >= k samples (tau-bench, Yao et al.
              2024): C(c, k) / C(n, k); the record holds pass^1 .. pass^k
  oracle@k    correct if any of the first k samples is, by the true verifier: 1[max_{i<=k} r(x, y_i) = 1].
              The empirical pass@k on exactly k samples; it reads the answer key, so it is an upper
              bound on every selection method, never a deployable decoder (records say "upper_bound").
  best@k      best-of-k by the policy's value head (alias best-value@k): argmax_{i<=k} V(x, y_i)
              (Cobbe et al. 2021); needs a policy with a value head (a PPO-trained one)
  retry@k     try again until the value head believes the try succeeded (V >= 0.5), at most k tries; the
              accepted (or last) try counts, and the record holds the mean tries spent (agents: tries run
              on copies of the task). Needs a value head, like best@k
  judge@k     best-of-k by the policy judging its own candidates (alphaloop.scorers.judge)
  rm@k        best-of-k by a learned reward model (the run's `reward_model` stage): the RLHF decoder,
              whose KL from the policy is log k - (k-1)/k (stage `best_of_n` measures its gold)

All sampled decoders share one set of n = max(k) samples per problem, so a table of decoders
costs one generation pass, and maj@k / oracle@k / best@k / judge@k use the first k of the same
samples. Scorers run once over all n samples; best@k is then an argmax over the first k scores.
The same pass yields the test-time compute curve: each family's accuracy at every k of `curve`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

import torch

from alphaloop.collect import expert_episodes, policy_episodes
from alphaloop.episode import Episode
from alphaloop.evals.agents import agent_metrics, by_template, example_transcripts, pass_hat_curve, success_by_horizon
from alphaloop.evals.metrics import majority_vote, pass_at_k
from alphaloop.search.best_of_n import select_best, select_retry
from alphaloop.seeding import derive_seed

DECODER_PATTERN = re.compile(r"^(greedy|sample|(maj|pass|oracle|best|best-value|retry|judge|rm)@(\d+)|pass\^(\d+))$")
ALIASES = {"best-value": "best"}
SCORED = ("best", "retry", "judge", "rm")  # decoders that pick by a scorer's scores
OWN_SCORERS = ("best", "retry", "judge")   # ... built from the evaluated LM policy itself
VALUE_SCORED = ("best", "retry")           # ... by its value head
CURVE_FAMILIES = ("maj", "best", "retry", "judge", "rm", "oracle")  # decoders the test-time compute curve sweeps over k
EXPERT_SKIP_NOTE = ("not defined for the expert: {name}@K ranks samples by an LM policy's own "
                    "{what}, and the expert is a program with neither")
NO_VALUE_HEAD_NOTE = ("not defined for this policy: {name}@K ranks samples by a value head, which only an "
                      "`rl` stage with algorithm='ppo' trains")


def eval_problem_seed(recipe_seed: int, split: str) -> int:
    """The seed of a split's fixed eval problems: it depends on the recipe seed and the split only,
    so every stage's in-training eval, the `eval` stage and `alphaloop eval` see the same problems."""
    return derive_seed(recipe_seed, "eval-problems", split) % (2**31)


def parse_decoder(spec: str) -> tuple[str, int]:
    """'maj@8' -> ('maj', 8); 'best-value@4' -> ('best', 4); 'pass^8' -> ('pass^', 8); 'greedy' -> ('greedy', 1).

    Raises ValueError naming what is allowed."""
    match = DECODER_PATTERN.match(str(spec).strip())
    if not match:
        raise ValueError(f"unknown decoder {spec!r}: expected greedy, sample, maj@K, pass@K, pass^K, oracle@K, "
                         "best@K (alias best-value@K), judge@K or rm@K (K >= 1)")
    if match.group(4) is not None:
        k = int(match.group(4))
        if k < 1:
            raise ValueError(f"decoder {spec!r}: K must be >= 1")
        return "pass^", k
    if match.group(2) is None:
        return match.group(1), 1
    k = int(match.group(3))
    if k < 1:
        raise ValueError(f"decoder {spec!r}: K must be >= 1")
    return ALIASES.get(match.group(2), match.group(2)), k


def samples_needed(decoders: Sequence[str], curve: Sequence[int] | None = None) -> int:
    """n: the samples per problem that serve every sampled decoder and every k of the curve."""
    ks = [k for name, k in map(parse_decoder, decoders) if name != "greedy"]
    return max(ks + list(curve or []), default=0)


def curve_families(decoders: Sequence[str]) -> list[str]:
    """The decoder families present in `decoders` that the test-time compute curve sweeps."""
    present = {name for name, _ in map(parse_decoder, decoders)}
    return [name for name in CURVE_FAMILIES if name in present]


def _check_k(name: str, k: int, groups: list[list[Episode]]) -> None:
    drawn = min(len(g) for g in groups)
    if k > drawn:
        raise ValueError(f"decoder {name}@{k}: needs {k} samples per problem, only {drawn} were drawn")


def decoder_metrics(name: str, k: int, problems: Sequence, groups: list[list[Episode]],
                    scores: list[list[float]] | None = None) -> dict[str, float]:
    """Accuracy (and pass@k) of one decoder from already-collected, scored episode groups; on an agent env
    also the harm rate, steps and tool-error rate of the episodes the decoder read (`agent_metrics`).

    `scores[p][i]` is the scorer's score of `groups[p][i]`; best and judge need it."""
    metrics = _decoder_metrics(name, k, problems, groups, scores)
    if groups and groups[0] and "steps" in groups[0][0].info:
        if name in SCORED:      # harm, steps and errors of the transcripts the decoder picked
            read = [[e] for e in _picks(name, k, groups, scores)[0]]
        else:
            read = groups if name != "greedy" else [g[:1] for g in groups]
        metrics |= agent_metrics(read)
    return metrics


def _picks(name: str, k: int, groups: list[list[Episode]], scores: list[list[float]]) -> tuple[list[Episode],
                                                                                            list[int] | None]:
    """The episode a scored decoder picks per problem (and, for retry, the tries it took)."""
    if name == "retry":
        return select_retry(groups, scores, k)
    return select_best(groups, scores, k), None


def _decoder_metrics(name: str, k: int, problems: Sequence, groups: list[list[Episode]],
                     scores: list[list[float]] | None) -> dict[str, float]:
    n_problems = len(problems)
    if name in ("greedy",):
        return {"accuracy": sum(g[0].success for g in groups) / n_problems}
    if name == "sample":
        return {"accuracy": sum(sum(e.success for e in g) / len(g) for g in groups) / n_problems}
    if name == "maj":
        _check_k(name, k, groups)
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
    if name == "pass^":
        _check_k("pass^", k, groups)
        n = min(len(g) for g in groups)
        curve = pass_hat_curve(groups, k)
        return {"accuracy": curve[-1], "pass^1": curve[0], f"pass^{k}": curve[-1]}
    if name == "oracle":
        _check_k(name, k, groups)
        return {"accuracy": sum(any(e.success for e in g[:k]) for g in groups) / n_problems}
    if name in SCORED:
        if scores is None:
            raise ValueError(f"decoder {name}@{k}: needs the scorer's scores of every sample (scores=None)")
        _check_k(name, k, groups)
        picked, tries = _picks(name, k, groups, scores)
        metrics = {"accuracy": sum(e.success for e in picked) / n_problems}
        return metrics | ({"tries": sum(tries) / len(tries)} if tries is not None else {})
    raise ValueError(f"unknown decoder {name!r}")


def _scorer(name: str, policy_name: str, policy, batch_size: int, reward_model=None):
    from alphaloop.scorers import JudgeScorer, ValueScorer

    if name == "rm":
        if reward_model is None:
            raise ValueError("decoder rm@K: picks by a reward model, and none was given (add a reward_model stage "
                             "before the eval stage)")
        return reward_model
    if name in VALUE_SCORED:
        return ValueScorer(policy, policy_name=policy_name, batch_size=batch_size)
    return JudgeScorer(policy, batch_size=batch_size)


def _group_scores(scorer, groups: list[list[Episode]]) -> list[list[float]]:
    """One scoring pass over every sample, regrouped by problem."""
    flat = scorer.score([e for g in groups for e in g])
    out, start = [], 0
    for group in groups:
        out.append(flat[start : start + len(group)])
        start += len(group)
    return out


def evaluate_decoders(
    policy_name: str,
    policy,
    env,
    problems: Sequence,
    decoders: Sequence[str],
    seed: int,
    temperature: float = 1.0,
    batch_size: int = 256,
    curve: Sequence[int] | None = None,
    skip_missing_value_head: bool = False,
    reward_model=None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records, curve points). One record {policy, split, decoder, metrics} per decoder; oracle records
    carry "upper_bound": True, and the expert's best/judge records carry "skipped" instead of metrics.
    Curve points are {policy, split, decoder (family), k, accuracy} for each k of `curve` and each
    family of CURVE_FAMILIES present in `decoders`. `policy` None means the env's expert.

    best@K on a policy without a value head raises, unless `skip_missing_value_head`: then its records
    carry "skipped" as the expert's do. The eval stage sets it, because one recipe often compares a
    PPO policy (which has a critic) with the imitation policy it started from (which has none).
    `reward_model` (any scorer of episodes) ranks the samples of rm@K, the expert's included."""
    parsed = [parse_decoder(d) for d in decoders]
    families = curve_families(decoders) if curve else []
    if curve and not families:
        raise ValueError(f"curve: needs at least one of {', '.join(f + '@K' for f in CURVE_FAMILIES)} "
                         f"in decoders to sweep, got {list(decoders)}")
    if curve and any(int(k) < 1 for k in curve):
        raise ValueError(f"curve: expected sample counts >= 1, got {list(curve)}")
    n = samples_needed(decoders, curve)
    expert = policy is None
    skipped: dict[str, str] = {}  # family -> why it is not defined for this policy
    if expert:
        skipped = {name: EXPERT_SKIP_NOTE.format(name=name, what="value head" if name in VALUE_SCORED
                                                 else "likelihoods") for name in OWN_SCORERS}
    elif skip_missing_value_head and getattr(policy, "value_head", None) is None:
        skipped = {name: NO_VALUE_HEAD_NOTE.format(name=name) for name in VALUE_SCORED}
    # Build scorers before generating, so a policy without a value head fails fast.
    scored = sorted({name for name, _ in parsed if name in SCORED and name not in skipped})
    scorers = {name: _scorer(name, policy_name, policy, batch_size, reward_model) for name in scored}
    greedy_groups = sampled_groups = None
    if expert:
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
    scores = {name: _group_scores(scorer, sampled_groups) for name, scorer in scorers.items()}

    records = []
    for spec, (name, k) in zip(decoders, parsed):
        record: dict[str, Any] = {"policy": policy_name, "split": env.split, "decoder": spec}
        if name in skipped:
            records.append({**record, "metrics": {}, "skipped": skipped[name]})
            continue
        groups = greedy_groups if name == "greedy" else sampled_groups
        metrics = decoder_metrics(name, k, problems, groups, scores.get(name))
        metrics["n"] = len(problems)
        record["metrics"] = {key: round(value, 6) for key, value in metrics.items()}
        if name == "oracle":
            record["upper_bound"] = True
        if name == "pass^":  # the reliability curve, k = 1..K, for the report's plot
            record["pass_hat"] = [round(v, 6) for v in pass_hat_curve(groups, k)]
        if name in ("greedy", "sample", "pass^") and "template" in groups[0][0].info:  # per task template
            record["by_template"] = by_template(groups if name != "greedy" else [g[:1] for g in groups],
                                                k if name == "pass^" else None)
        if name in ("greedy", "sample") and "horizon" in groups[0][0].info:  # success against the task's length
            record["by_horizon"] = success_by_horizon(groups if name == "sample" else [g[:1] for g in groups])
            record["transcripts"] = example_transcripts(groups)
        records.append(record)

    points = []
    for k in sorted({int(k) for k in curve or []}):
        for family in families:
            if family in skipped:
                continue
            accuracy = decoder_metrics(family, k, problems, sampled_groups, scores.get(family))["accuracy"]
            point = {"policy": policy_name, "split": env.split, "decoder": family, "k": k,
                     "accuracy": round(accuracy, 6)}
            if family == "oracle":
                point["upper_bound"] = True
            points.append(point)
    return records, points


def evaluate(
    policy_name: str,
    policy,
    env,
    problems: Sequence,
    decoders: Sequence[str],
    seed: int,
    temperature: float = 1.0,
    batch_size: int = 256,
    reward_model=None,
) -> list[dict[str, Any]]:
    """One record {policy, split, decoder, metrics} per decoder. `policy` None means the env's expert."""
    return evaluate_decoders(policy_name, policy, env, problems, decoders, seed, temperature, batch_size,
                             reward_model=reward_model)[0]
