"""How well does each scorer separate a policy's right samples from its wrong ones?

    python benchmarks/scorer_auc.py runs/rl-ppo-s0/stages/0-rl/policy [--samples 8] [--problems 500]

Samples `--samples` completions per problem of the fixed `test` eval set (recipe seed 0, as the
eval stage draws it) at temperature 1 and prints, for each scorer the policy supports, the AUC

    AUC = P(s(correct) > s(wrong)) + 1/2 P(s(correct) = s(wrong))

over all (correct, wrong) pairs of samples: 0.5 is a coin, 1.0 a perfect verifier. Scorers: the
PPO value head (best@K), the policy as judge (judge@K), and, for reference, the completion's own
log-likelihood sum_t log pi(y_t | x, y_<t). The env is the quickstart's arithmetic (1-3 digits, +).
"""

from __future__ import annotations

import argparse

import torch

from alphaloop.collect import policy_episodes
from alphaloop.envs import make_env
from alphaloop.evals.evaluate import eval_problem_seed
from alphaloop.policies.lm import LMPolicy
from alphaloop.scorers import JudgeScorer, ValueScorer


def auc(scores: list[float], labels: list[bool]) -> float:
    pos = torch.tensor([s for s, y in zip(scores, labels) if y])[:, None]
    neg = torch.tensor([s for s, y in zip(scores, labels) if not y])[None, :]
    if pos.numel() == 0 or neg.numel() == 0:
        return float("nan")
    return float(((pos > neg).float() + 0.5 * (pos == neg).float()).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("policy", help="a saved policy directory")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = LMPolicy.load(args.policy)
    env = make_env("arithmetic", split="test")
    problems = env.problems("test", args.problems, seed=eval_problem_seed(0, "test"))
    groups = policy_episodes(policy, env, problems, args.samples, temperature=1.0,
                             generator=torch.Generator().manual_seed(0))
    episodes = [e for g in groups for e in g]
    labels = [e.success for e in episodes]
    print(f"{args.policy}: {len(episodes)} samples, {sum(labels)} correct, {len(labels) - sum(labels)} wrong")
    if policy.value_head is not None:
        print(f"  value head (best@K)   AUC {auc(ValueScorer(policy).score(episodes), labels):.3f}")
    print(f"  self-judge (judge@K)  AUC {auc(JudgeScorer(policy).score(episodes), labels):.3f}")
    print(f"  log-likelihood        AUC {auc([sum(e.logprobs) for e in episodes], labels):.3f}")


if __name__ == "__main__":
    main()
