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

import argparse
import collections
from math import comb

import torch

from alphaloop.collect import policy_episodes
from alphaloop.envs import make_env
from alphaloop.policies.lm import LMPolicy
from alphaloop.recipe import parse_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="a saved policy directory")
    parser.add_argument("--env", default="shell", help="an agent env")
    parser.add_argument("--knobs", nargs="*", default=[], help="env knobs as name=value (e.g. memory=2)")
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--group", default="template", help="the task field to group by (problem.meta)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    knobs = {k: parse_value(v) for k, _, v in (item.partition("=") for item in args.knobs)}
    env = make_env(args.env, split=args.split, **knobs)
    policy = LMPolicy.load(args.policy)
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
