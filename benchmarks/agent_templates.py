"""Where does an agent policy succeed? Success, pass^k and harm per task template.

    python benchmarks/agent_templates.py runs/agent-shell/stages/1-rl/policy --env shell \
        --knobs memory=2 page=2 --split heldout

For `--tasks` fixed tasks of `--split` (`env.problems(split, N, seed=0)`), plays each once greedily
and `--samples` times at temperature 1 (torch seed 0), and prints per value of the tasks' `--group`
field (`problem.meta[group]`: the shell env's `template`) the task count, greedy success, pass^1,
pass^k (the unbiased C(c, k) / C(n, k) averaged over tasks, k = samples) and the share of sampled
episodes that did harm. The eval stage's figures are over all templates together; this splits them,
so one template that is never learnt is not hidden by three that are.
"""

from __future__ import annotations

import collections
import sys
from math import comb
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agent_cli import agent_parser, load  # noqa: E402

from alphaloop.collect import policy_episodes  # noqa: E402


def main() -> None:
    parser = agent_parser(__doc__.split("\n")[0], env="shell", split="heldout", tasks=50)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--group", default="template", help="the task field to group by (problem.meta)")
    args = parser.parse_args()
    env, policy = load(args)
    problems = env.problems(args.split, args.tasks, seed=0)
    sampled = policy_episodes(policy, env, problems, args.samples, temperature=1.0,
                              generator=torch.Generator().manual_seed(0))
    greedy = policy_episodes(policy, env, problems, 1, temperature=0.0)
    rows: dict = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0, 0.0])
    k = args.samples
    for problem, tries, (first,) in zip(problems, sampled, greedy):
        row = rows[problem.meta.get(args.group, "-")]
        wins = sum(e.success for e in tries)
        row[0] += 1
        row[1] += first.success
        row[2] += wins / k
        row[3] += comb(wins, k) / comb(k, k)
        row[4] += sum(e.harm > 0 for e in tries) / k
    print(f"{args.env} {args.split}, {args.tasks} tasks, {k} samples each")
    print(f"| {args.group} | tasks | greedy | pass^1 | pass^{k} | harm (sampled) |")
    print("|---|---|---|---|---|---|")
    for name, (n, first, mean, all_k, harm) in sorted(rows.items()):
        print(f"| {name} | {n} | {first / n:.2f} | {mean / n:.3f} | {all_k / n:.2f} | {harm / n:.1%} |")


if __name__ == "__main__":
    main()
