"""Where does an agent policy succeed? Success, pass^k and harm per task template.

    python benchmarks/agent_templates.py runs/agent-shell/stages/1-rl/policy --env shell \
        --knobs memory=2 page=2 --split heldout

For `--tasks` fixed tasks of `--split` (`env.problems(split, N, seed=0)`), plays each once greedily
and `--samples` times at temperature 1 (torch seed 0), and prints per value of the tasks' `--group`
field (`template` or `horizon`, as the episodes carry it; `evals.agents.by_template`) the task
count, greedy success, pass^1, pass^k (the unbiased C(c, k) / C(n, k) averaged over tasks, k =
samples) and the share of sampled episodes that did harm, then the same over all tasks, and how the
sampled episodes met tool errors: how often the action after an error is a look (`ls`, `grep`, `find`,
`cat`, `list`, `open`, `inbox`), and what share of the episodes with an error still succeeded. The
eval stage reports the same split per template (`by_template` in its records and the report's "Per
task template" table); this script does it for any saved policy without a run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agent_cli import agent_parser, load  # noqa: E402

from alphaloop.collect import policy_episodes  # noqa: E402
from alphaloop.evals.agents import by_template, pass_hat_curve  # noqa: E402

LOOKS = ("ls", "grep", "find", "cat", "list", "open", "inbox")


def recovery(groups: list) -> tuple[int, float, int, float]:
    """Tool errors before an episode's last action, the share followed by a look, episodes with such an
    error and the share of them that succeeded."""
    errors = looks = erred = recovered = 0
    for episode in (e for group in groups for e in group):
        outputs = episode.observations[1:]
        hit = [i for i, out in enumerate(outputs[:-1]) if out.startswith("error") and i + 1 < len(episode.actions)]
        errors += len(hit)
        looks += sum(episode.actions[i + 1].split(" ")[0] in LOOKS for i in hit)
        erred += bool(hit)
        recovered += bool(hit) and episode.success
    return errors, looks / max(1, errors), erred, recovered / max(1, erred)


def main() -> None:
    parser = agent_parser(__doc__.split("\n")[0], env="shell", split="heldout", tasks=50)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--group", default="template", choices=["template", "horizon"],
                        help="the task field to group by")
    args = parser.parse_args()
    env, policy = load(args)
    problems = env.problems(args.split, args.tasks, seed=0)
    sampled = policy_episodes(policy, env, problems, args.samples, temperature=1.0,
                              generator=torch.Generator().manual_seed(0))
    greedy = policy_episodes(policy, env, problems, 1, temperature=0.0)
    k = args.samples
    rows = by_template(sampled, k, field=args.group)
    first = by_template(greedy, field=args.group)
    print(f"{args.env} {args.split}, {args.tasks} tasks, {k} samples each")
    print(f"| {args.group} | tasks | greedy | pass^1 | pass^{k} | harm (sampled) |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['tasks']} | {first[name]['success']:.2f} | {row['success']:.3f} | "
              f"{row[f'pass^{k}']:.2f} | {row['harm_rate']:.1%} |")
    flat = [e for group in sampled for e in group]
    print(f"| all | {len(problems)} | {sum(g[0].success for g in greedy) / len(greedy):.2f} | "
          f"{sum(e.success for e in flat) / len(flat):.3f} | {pass_hat_curve(sampled, k)[-1]:.2f} | "
          f"{sum(e.harm > 0 for e in flat) / len(flat):.1%} |")
    errors, looks, erred, recovered = recovery(sampled)
    print(f"tool errors: {errors} in {len(flat)} sampled episodes; the next action a look after {looks:.0%} of "
          f"them; {erred} episodes with an error, {recovered:.0%} of them succeeded")


if __name__ == "__main__":
    main()
