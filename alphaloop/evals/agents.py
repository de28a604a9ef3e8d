"""Agent metrics and curves: reliability (pass^k), harm, steps, tool errors, success against horizon.

An agent right most of the time is not an agent people can rely on: pass^k (tau-bench, Yao et al.
2024) asks that all k tries succeed, and errors compound with the task's length -- with a chance p
of getting each action right and independent errors, an h-action task succeeds p^h of the time.
The eval stage draws both: pass^k against k, and success against horizon beside that p^h line.
"""

from __future__ import annotations

from typing import Any

from alphaloop.episode import Episode
from alphaloop.evals.metrics import pass_hat_k


def pass_hat_curve(groups: list[list[Episode]], k: int) -> list[float]:
    """[pass^1, ..., pass^k], each the mean over problems of the unbiased C(c, j) / C(n, j)."""
    n = min(len(g) for g in groups)
    return [sum(pass_hat_k(n, sum(e.success for e in g[:n]), j) for g in groups) / len(groups)
            for j in range(1, k + 1)]


def success_by_horizon(groups: list[list[Episode]]) -> dict[str, float]:
    """Success rate of the episodes grouped by their task's horizon (`info["horizon"]`), e.g. {"1": 0.9},
    in order of horizon: `by_template`'s success column over that field."""
    rows = by_template(groups, field="horizon")
    return {h: rows[h]["success"] for h in sorted(rows, key=int)}


def by_template(groups: list[list[Episode]], k: int | None = None,
                field: str = "template") -> dict[str, dict[str, float]]:
    """The figures of the whole split again per task template (`info[field]`: "template", or another
    task field the episodes carry, such as "horizon"), so that one template that is never learnt is
    not hidden by the others: per template the task count, the success rate over its episodes, the
    share of episodes that did harm, and with `k` its pass^k (the unbiased C(c, k) / C(n, k)
    averaged over its tasks, n = the samples per task)."""
    tally: dict[str, list[list[Episode]]] = {}
    for group in groups:
        if group and group[0].info.get(field) is not None:
            tally.setdefault(str(group[0].info[field]), []).append(group)
    out = {}
    for template, tasks in sorted(tally.items()):
        episodes = [e for g in tasks for e in g]
        row = {"tasks": len(tasks), "success": sum(e.success for e in episodes) / len(episodes),
               "harm_rate": sum(e.harm > 0 for e in episodes) / len(episodes)}
        if k is not None:
            n = min(len(g) for g in tasks)
            row[f"pass^{k}"] = sum(pass_hat_k(n, sum(e.success for e in g[:n]), k) for g in tasks) / len(tasks)
        out[template] = {key: round(value, 6) for key, value in row.items()}
    return out


def agent_metrics(groups: list[list[Episode]]) -> dict[str, float]:
    """Multi-turn episodes: the share with any harm, mean actions taken, and the share of actions that
    were tool errors (malformed calls or calls that failed)."""
    episodes = [e for g in groups for e in g]
    steps = sum(e.info["steps"] for e in episodes)
    return {"harm_rate": sum(e.harm > 0 for e in episodes) / len(episodes), "steps": steps / len(episodes),
            "tool_error_rate": sum(e.info["tool_errors"] for e in episodes) / max(steps, 1)}


def agent_curves(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Summary curves from eval records: `reliability` (pass^k against k, from pass^K records) and one
    `horizon_<split>` per split (success against the task's horizon, from the sample -- else greedy --
    records, each with the p^h line that independent per-action errors would give, p fitted to the
    shortest horizon: p = success(h_min) ** (1 / h_min))."""
    reliability = [{"policy": r["policy"], "split": r["split"], "k": k, "pass^k": v}
                   for r in records if r.get("pass_hat") for k, v in enumerate(r["pass_hat"], start=1)]
    chosen: dict[tuple, dict] = {}
    for r in records:
        if r.get("by_horizon") and (chosen.get((r["policy"], r["split"]), {}).get("decoder") != "sample"):
            chosen[(r["policy"], r["split"])] = r
    horizon: dict[str, list[dict[str, Any]]] = {}   # one curve per split: heldout also changes the templates
    for (policy, split), r in chosen.items():
        rates = {int(h): v for h, v in r["by_horizon"].items()}
        shortest = min(rates)
        p = rates[shortest] ** (1 / shortest) if shortest > 0 else rates[shortest]
        for h, rate in sorted(rates.items()):
            horizon.setdefault(f"horizon_{split}", []).extend([
                {"policy": policy, "line": "measured", "horizon": h, "success": rate},
                {"policy": policy, "line": "p^h", "horizon": h, "success": round(p ** h, 6)}])
    return ({"reliability": reliability} if reliability else {}) | horizon


def transcript_text(episode: Episode) -> str:
    """An agent episode as a person reads it: the task, then `$ action` and the env's answer, turn by turn."""
    lines = [episode.prompt.rstrip("$ ").rstrip()]
    for action, answer in zip(episode.actions, episode.observations[1:]):
        lines += [f"$ {action}", answer]
    cut = episode.info.get("cut")
    return "\n".join(lines + ([f"(ended: {cut})"] if cut else []))


def example_transcripts(groups: list[list[Episode]], per_kind: int = 2) -> list[dict[str, Any]]:
    """A few successes and a few failures (the first sample of each task, in task order) for the report."""
    firsts = [g[0] for g in groups if g]
    chosen = [e for e in firsts if e.success][:per_kind] + [e for e in firsts if not e.success][:per_kind]
    return [{"success": e.success, "harm": e.harm, "steps": e.info.get("steps"), "text": transcript_text(e)}
            for e in chosen]

