"""Checks of LM results computed independently of the code under test."""

from __future__ import annotations

from pathlib import Path

import torch

from alphaloop.envs import make_env
from alphaloop.evals.evaluate import eval_problem_seed
from alphaloop.policies.lm import LMPolicy


def hf_greedy_accuracy(policy_dir: Path, env_name: str, knobs: dict, split: str, count: int, seed: int) -> float:
    """Greedy accuracy recomputed without our sampler, forward or evaluator: Hugging Face's own model
    class and `generate` on the saved policy directory, the same fixed problems, the env's verifier."""
    from transformers import AutoModelForCausalLM

    ours = LMPolicy.load(policy_dir)  # for its prompt format only (BOS + characters)
    model = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    env = make_env(env_name, split=split, **knobs)
    problems = env.problems(split, count, seed=eval_problem_seed(seed, split))
    solved = 0
    for problem in problems:
        ids = torch.tensor([ours.prompt_ids(problem.prompt)])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=env.max_completion_chars + 1, eos_token_id=ours.eos_id,
                                 pad_token_id=ours.pad_id)
        completion = out[0, ids.shape[1]:].tolist()
        if ours.eos_id in completion:
            completion = completion[:completion.index(ours.eos_id)]
        solved += bool(env.verify(problem, ours.decode(completion)))
    return solved / len(problems)


def has_ten_column(a: int, b: int) -> bool:
    """Independent of the env's code: column i sums to ten, counting the carry from the digits below."""
    for i in range(max(len(str(a)), len(str(b)))):
        carry = (a % 10**i + b % 10**i) >= 10**i
        if (a // 10**i) % 10 + (b // 10**i) % 10 + carry == 10:
            return True
    return False
