"""Fixed-seed learning tests: imitation learns addition, then RL lifts it past the imitated teacher.

A tiny Llama (64 wide, 2 layers) on 1-2 digit addition, 1 thread. Imitation copies a teacher that
drops the carry on ten-columns 70% of the time; GRPO with the exact verifier then improves greedy
accuracy on the *test* split (problems never trained on) by a clear margin.
"""

import pytest
import torch
from lm_helpers import hf_greedy_accuracy

from alphaloop import runner
from alphaloop.recipe import validate_recipe

ARCH = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4, "intermediate_size": 192}


def run(tmp_path, name, knobs, stages):
    recipe = validate_recipe({"name": name, "seed": 0, "threads": 1, "policy": {"arch": ARCH},
                              "env": {"name": "arithmetic", "knobs": knobs}, "stages": stages})
    summary = runner.run(recipe, runner.prepare_run_dir(recipe, tmp_path / name), show_progress=False)
    torch.set_num_threads(1)
    return summary


def accuracy(summary, stage, step):
    return next(e["metrics"]["accuracy"] for e in summary["evals"] if e["stage"] == stage and e["step"] == step)


IMITATE = {"kind": "imitate", "steps": 400, "batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "eval_every": 400,
           "eval_problems": 100, "checkpoint_every": 1000}


def test_imitation_learns_addition(tmp_path):
    knobs = {"digits_min": 1, "digits_max": 2, "misconception_rate": 0.0}
    summary = run(tmp_path, "sft", knobs, [IMITATE])
    reported = accuracy(summary, "imitate", 400)
    assert reported >= 0.6  # from 0%; measured 78%
    # The same number from Hugging Face's own model and generate on the saved policy (a near-tie
    # between our forward and theirs may flip a problem or two).
    recomputed = hf_greedy_accuracy(tmp_path / "sft" / summary["stages"][0]["policy_dir"], "arithmetic", knobs,
                                    "test", 100, seed=0)
    assert abs(recomputed - reported) <= 0.02, (reported, recomputed)


@pytest.fixture(scope="module")
def rl_summary(tmp_path_factory):
    stages = [IMITATE, {"kind": "rl", "algorithm": "grpo", "steps": 40, "prompts_per_step": 16, "group_size": 8,
                        "lr": 1e-4, "eval_every": 40, "eval_problems": 100, "checkpoint_every": 1000},
              # one round of expert iteration from the same imitation policy (test_expert_iteration_...)
              {"kind": "expert_iteration", "start_from": "imitate", "rounds": 1, "prompts_per_round": 512,
               "samples": 8, "keep_per_prompt": 4, "steps_per_round": 90, "batch_size": 32, "lr": 3e-4,
               "eval_every": 90, "eval_problems": 100, "checkpoint_every": 1000}]
    return run(tmp_path_factory.mktemp("rl"), "rl", {"digits_min": 1, "digits_max": 2, "misconception_rate": 0.7},
               stages)


def test_rl_goes_past_imitation(rl_summary):
    before, after = accuracy(rl_summary, "rl", 0), accuracy(rl_summary, "rl", 40)
    assert after >= before + 0.05, (before, after)  # measured 0.79 -> 0.88


def test_one_expert_iteration_round_goes_past_imitation(rl_summary):
    """Sample 8 per prompt, keep the verified ones, imitate them: one round lifts test accuracy."""
    before, after = accuracy(rl_summary, "expert_iteration", 0), accuracy(rl_summary, "expert_iteration", 90)
    # measured 0.79 -> 0.87 (seeds 1 and 2: +0.09, +0.07; from 256 prompts and 30 steps the lift was
    # +0.01 to +0.09 by seed, too close to the 100 test problems' noise)
    assert after >= before + 0.05, (before, after)
