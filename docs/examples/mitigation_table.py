"""Print the mitigation table of a `recipes/rlhf-mitigations.toml` run: per variant, the final gold on
the fixed held-out prompts (mean and spread over its seeds), the gold peak, sqrt(KL) and the proxy,
and for the alarm the step it fired at and the gold 10% line it had to beat.

    python docs/examples/mitigation_table.py runs/rlhf-mitigations

It also replays the alarm's rule at other thresholds on the stages that ran to the end.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(run_dir: Path) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    variants: dict[str, list[dict]] = {}
    for stage in summary["stages"]:
        if stage["kind"] == "rl" and "final" in stage:
            variants.setdefault(stage["name"].rsplit("-", 1)[0], []).append(stage)
    gold_evals = [e for e in summary["evals"] if e["split"] == "gold-prompts"]
    print("| variant | final gold (mean over seeds) | per seed | gold peak | sqrt(KL) at end | proxy at end |")
    print("|---|---|---|---|---|---|")
    for name, stages in variants.items():
        finals = [s["final"]["gold"] for s in stages]
        spread = f" +- {statistics.stdev(finals):.3f}" if len(finals) > 1 else ""
        print(f"| {name} | **{statistics.mean(finals):.3f}**{spread} | {', '.join(f'{g:.3f}' for g in finals)} | "
              f"{statistics.mean(s['final']['gold_peak'] for s in stages):.3f} | "
              f"{statistics.mean(s['final']['kl_sqrt'] for s in stages):.2f} | "
              f"{statistics.mean(s['final']['proxy'] for s in stages):.2f} |")
    print("\nalarm (every stage measures it; early-stop stages act on it):")
    for stages in variants.values():
        for s in stages:
            curve = [(e["step"], e["metrics"]["gold"]) for e in gold_evals if e["stage"] == s["name"]]
            peak = max(g for _, g in curve)
            peak_step = next(step for step, g in curve if g == peak)
            fell = next((step for step, g in curve if step > peak_step and g < 0.9 * peak), None)
            fired = s["final"].get("alarm_step")
            verdict = ("in time" if fired is not None and (fell is None or fired < fell)
                       else "late" if fired is not None else "never fired")
            print(f"  {s['name']}: gold peak {peak:.3f} at step {peak_step}, 10% below it first at step {fell}, "
                  f"alarm at step {fired} ({verdict})" + (f", kept step {s['final']['kept_step']}"
                                                          if "kept_step" in s["final"] else ""))




def alarm_thresholds(summary: dict, thresholds: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75),
                     window: int = 2) -> None:
    """Replay the alarm's rule at other thresholds on every stage that ran to its end (not the early
    stops, which ended at theirs): when would it have fired, and was that before the gold first fell
    10% below its peak? (`agreed` / `labelled` are logged per eval, so any window can be replayed.)"""
    evals = summary["evals"]
    ran_out = [s["name"] for s in summary["stages"] if s["kind"] == "rl" and "kept_step" not in s.get("final", {})]
    print(f"\nalarm replayed (pooled over {window} evals; in time = strictly before the gold is 10% below its peak):")
    print("| threshold | " + " | ".join(ran_out) + " | in time |")
    print("|---|" + "---|" * (len(ran_out) + 1))
    for threshold in thresholds:
        cells, in_time = [], 0
        for name in ran_out:
            alarm = [e for e in evals if e["stage"] == name and e["split"] == "alarm"]
            gold = [(e["step"], e["metrics"]["gold"]) for e in evals if e["stage"] == name
                    and e["split"] == "gold-prompts"]
            peak_step, peak = max(gold, key=lambda sg: (sg[1], -sg[0]))
            fell = next((step for step, g in gold if step > peak_step and g < 0.9 * peak), None)
            fired = None
            for i, e in enumerate(alarm):
                recent = alarm[max(0, i - window + 1): i + 1]
                agreed = sum(r["metrics"]["agreed"] for r in recent)
                labelled = sum(r["metrics"]["labelled"] for r in recent)
                rising = e["metrics"]["proxy"] > alarm[0]["metrics"]["proxy"]
                if labelled >= 8 and agreed / labelled < threshold and rising:
                    fired = e["step"]
                    break
            ok = fired is not None and (fell is None or fired < fell)
            in_time += ok
            cells.append(f"{fired} / {fell}" + ("" if ok else " (late)" if fired is not None else " (never)"))
        print(f"| {threshold} | " + " | ".join(cells) + f" | {in_time}/{len(ran_out)} |")


if __name__ == "__main__":
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/rlhf-mitigations")
    main(run)
    alarm_thresholds(json.loads((run / "summary.json").read_text()))
