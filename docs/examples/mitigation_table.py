"""Print the mitigation table of a `recipes/rlhf-mitigations.toml` run: per variant, the final gold on
the fixed held-out prompts (mean and spread over its seeds), the gold peak, sqrt(KL) and the proxy,
and for the alarm the step it fired at and the gold 10% line it had to beat.

    python docs/examples/mitigation_table.py runs/rlhf-mitigations
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


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/rlhf-mitigations"))
