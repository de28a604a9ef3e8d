"""How far does a policy trained on 1-3 digit sums carry? Greedy accuracy at each held-out length.

    python benchmarks/length_generalisation.py runs/length-generalisation/stages/0-imitate/policy \\
        --knobs answer_format=reversed
    python benchmarks/length_generalisation.py runs/lg/plain/stages/0-imitate/policy   # the chain format

For each length n in `--digits` (default 4 5 6) builds the arithmetic env's `heldout` split with both
operands n digits long (`heldout_digits_min = heldout_digits_max = n`) and the given knobs, decodes
`--problems` fixed problems (`env.problems("heldout", N, seed=0)`) greedily and prints the accuracy,
plus the `test` split's (1-3 digits, as trained) for reference. With `--digit-errors` it also prints,
per answer digit of significance j, how often it is wrong among the answers of the right length (the
reversed format only): where along the number a policy stops adding correctly. `--id-shift N` moves a
coupled policy's coupled ids N further from BOS and '+' (id 0) at evaluation: how much the policy
reads its column off its distance to them (docs/generalisation.md).
The env knobs must be those the policy was trained with (the answer format); the policy's own
position rule, if any, comes with it from its config.json.
"""

from __future__ import annotations

import argparse
import time

import torch

from alphaloop.collect import policy_episodes
from alphaloop.envs import make_env
from alphaloop.policies.lm import LMPolicy
from alphaloop.recipe import parse_value


def greedy_accuracy(policy: LMPolicy, env, split: str, problems: int) -> tuple[float, list]:
    """(greedy accuracy, [(problem, episode)]) on `problems` fixed problems of `split`."""
    fixed = env.problems(split, problems, seed=0)
    episodes = [group[0] for group in policy_episodes(policy, env, fixed, 1, temperature=0.0)]
    return sum(e.success for e in episodes) / len(episodes), list(zip(fixed, episodes))


def digit_errors(pairs: list) -> dict[int, float]:
    """Per significance j, the share of wrong answer digits among reversed-format completions of the
    right width (answer digit j of `231` is its j-th character)."""
    wrong: dict[int, int] = {}
    counted = 0
    for problem, episode in pairs:
        width = len(str(max(problem.meta["a"], problem.meta["b"]))) + 1
        expected = str(int(problem.answer)).zfill(width)[::-1]
        got = episode.completion.strip()
        if got[:1].isalpha():  # index hints (`g2h3i1`): the digits after the letters
            got = got[1::2]
        if len(got) != width:
            continue
        counted += 1
        for j, (x, y) in enumerate(zip(got, expected)):
            wrong[j] = wrong.get(j, 0) + (x != y)
    return {j: round(n / counted, 3) for j, n in sorted(wrong.items())} if counted else {}


class ShiftedIds:
    """A position rule with every nonzero id moved by `shift` (BOS and '+' stay at 0)."""

    def __init__(self, rule, shift: int) -> None:
        self.rule, self.shift, self.name = rule, shift, f"{rule.name}+{shift}"

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids = self.rule(input_ids, attention_mask)
        return torch.where(ids > 0, ids + self.shift, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="a saved policy directory")
    parser.add_argument("--knobs", nargs="*", default=[], help="env knobs as name=value (e.g. answer_format=reversed)")
    parser.add_argument("--digits", nargs="*", type=int, default=[4, 5, 6], help="held-out operand lengths")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--digit-errors", action="store_true", help="per answer digit error rates (reversed format)")
    parser.add_argument("--id-shift", type=int, default=0, help="move a coupled policy's ids this far from BOS and '+'")
    args = parser.parse_args()
    torch.set_num_threads(1)
    knobs = {k: parse_value(v) for k, _, v in (item.partition("=") for item in args.knobs)}
    policy = LMPolicy.load(args.policy)
    if args.id_shift:
        if policy.positions is None:
            parser.error("--id-shift needs a policy with a position rule")
        policy.positions = ShiftedIds(policy.positions, args.id_shift)
    rule = policy.positions.name if policy.positions is not None else "default"
    print(f"{args.policy} knobs={knobs} positions={rule}")
    started = time.perf_counter()
    accuracy, _ = greedy_accuracy(policy, make_env("arithmetic", split="test", **knobs), "test", args.problems)
    print(f"  test (1-3 digits): greedy {accuracy:.1%} on {args.problems} problems")
    for n in args.digits:
        env = make_env("arithmetic", split="heldout", **{**knobs, "heldout_digits_min": n, "heldout_digits_max": n})
        accuracy, pairs = greedy_accuracy(policy, env, "heldout", args.problems)
        line = f"  heldout {n} digits: greedy {accuracy:.1%} on {len(pairs)} problems"
        if args.digit_errors:
            line += f"; wrong answer digits by significance: {digit_errors(pairs)}"
        print(line)
    print(f"  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
