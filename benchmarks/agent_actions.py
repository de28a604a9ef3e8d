"""Which actions has an agent policy learnt? Teacher-forced accuracy per command on expert transcripts.

    python benchmarks/agent_actions.py runs/agent-invoices/stages/0-imitate/policy --env invoices \
        --knobs memory=3

For `--tasks` fixed tasks of `--split` (`env.problems(split, N, seed=7)`), the env's expert plays each
one without slips (slip, typo and harm_slip 0); every one of its actions becomes a row exactly as the
policy would read it (the task and, with memory, its last turns: `agent_memory.turn_rows`). The policy
then decodes each row greedily, and this prints, per command (`add`, `open`, `ls`, ...), how often its
action equals the expert's, with a few of the misses and their contexts. A whole-episode success rate
says only that something went wrong; this says which skill is missing (navigating, copying a number,
reading a field), each measured in the expert's states so an early error cannot hide a later one.
"""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agent_cli import agent_parser, load  # noqa: E402

from alphaloop.agent_memory import turn_rows  # noqa: E402
from alphaloop.collect.agent import expert_transcript  # noqa: E402
from alphaloop.policies.sampler import sample  # noqa: E402


def main() -> None:
    parser = agent_parser(__doc__.split("\n")[0], env="invoices", split="test", tasks=40)
    parser.add_argument("--misses", type=int, default=3, help="misses shown per command")
    args = parser.parse_args()
    env, policy = load(args, slip=0.0, typo=0.0, harm_slip=0.0)
    contexts, wanted = [], []
    for problem in env.problems(args.split, args.tasks, seed=7):
        for row in turn_rows(expert_transcript(env, problem, random.Random(0), policy=policy)):
            contexts.append(row.prompt_ids)
            wanted.append(policy.decode(row.action_ids[:-1]))   # the action without its EOS
    out = sample(policy, contexts, max_new_tokens=env.max_action_chars + 1, temperature=0.0)
    right: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    misses = collections.defaultdict(list)
    for context, want, ids in zip(contexts, wanted, out.completion_ids):
        got = policy.decode(ids[:-1] if ids and ids[-1] == policy.eos_id else ids)
        command = want.split()[0]
        total[command] += 1
        right[command] += got == want
        if got != want and len(misses[command]) < args.misses:
            misses[command].append((want, got, policy.decode(context)[-110:].replace("\n", " | ")))
    print(f"{args.env} {args.split}: {len(contexts)} expert actions of {args.tasks} tasks, greedy from the "
          "expert's own contexts")
    for command in sorted(total):
        print(f"  {command:8s} {right[command]:4d} / {total[command]:4d} = {right[command] / total[command]:.2f}")
    for command, items in sorted(misses.items()):
        for want, got, context in items:
            print(f"  miss {command}: want {want!r}, got {got!r}  (... {context})")


if __name__ == "__main__":
    main()
