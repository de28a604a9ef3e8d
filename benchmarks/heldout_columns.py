"""Where does a policy fail on longer sums? Column-by-column diagnosis of greedy chains on `heldout`.

    python benchmarks/heldout_columns.py runs/rl-compare-hints/stages/0-imitate/policy --knobs index_hints=true

For `--problems` fixed heldout problems (`env.problems("heldout", N, seed=0)`) of the arithmetic env
with the given knobs, decodes greedily and prints how many column steps each chain has and, per
column i, how many chains restate both operands' digits of column i correctly (`x+y` after an
optional index-hint letter). A model that looks digits up by absolute position gets the low
columns right and the new high column wrong, or stops early.
"""

from __future__ import annotations

import argparse
import collections
import re

import torch

from alphaloop.collect import policy_episodes
from alphaloop.envs import make_env
from alphaloop.envs.arithmetic import digits_of
from alphaloop.policies.lm import LMPolicy
from alphaloop.recipe import parse_value

STEP = re.compile(r"^[a-z]?(\d+)[+-](\d)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="a saved policy directory")
    parser.add_argument("--knobs", nargs="*", default=[], help="env knobs as name=value (e.g. index_hints=true)")
    parser.add_argument("--problems", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    knobs = {k: parse_value(v) for k, _, v in (item.partition("=") for item in args.knobs)}
    env = make_env("arithmetic", split="heldout", **knobs)
    policy = LMPolicy.load(args.policy)
    problems = env.problems("heldout", args.problems, seed=0)
    episodes = [g[0] for g in policy_episodes(policy, env, problems, 1, temperature=0.0)]
    lengths, right = collections.Counter(), collections.Counter()
    width = max(env.config.heldout_digits_max, env.config.pad_width)
    for episode, problem in zip(episodes, problems):
        steps = episode.completion.split(" >")[0].split(" ")
        lengths[len(steps)] += 1
        a, b = digits_of(problem.meta["a"], width), digits_of(problem.meta["b"], width)
        for i, step in enumerate(steps[:width]):
            match = STEP.match(step)
            right[i] += bool(match) and int(match.group(1)) % 10 == a[i] and int(match.group(2)) == b[i]
    accuracy = sum(e.success for e in episodes) / len(episodes)
    print(f"{args.policy} knobs={knobs}: heldout greedy {accuracy:.1%} on {len(episodes)} problems")
    print("  column steps per chain:", dict(sorted(lengths.items())))
    print("  column i restated right:", {i: right[i] for i in range(width)})


if __name__ == "__main__":
    main()
