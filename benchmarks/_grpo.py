"""The two sides of the GRPO comparison (benchmarks/trl_grpo.py), built by functions that
benchmarks/rl_step.py, benchmarks/contention.py and tests/test_benchmarks.py call too.

A `Setup` is one row of the comparison: the policy both sides start from (the same HF-format
directory), prompts x completions per step, the generation length and the learning rate.
`alphaloop_steps` runs the `rl` stage on it through the runner; `trl_steps` runs TRL's
`GRPOTrainer` on it. Both return one `StepStats` per timed step, measured alike: seconds from
the start of generation to the end of the optimizer step, and the completions' reward mean,
truncation share (hit the length limit without EOS) and mean length in tokens, EOS included.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import quickstart, step_timer

from alphaloop import runner
from alphaloop.recipe import validate_recipe


@dataclass(frozen=True)
class Setup:
    """One row of the comparison. `policy_dir`: the HF-format weights both sides start from."""

    label: str
    policy_dir: str
    prompts: int
    group: int
    max_new_tokens: int
    lr: float
    mask_truncated: bool


@dataclass(frozen=True)
class StepStats:
    seconds: float
    completions: int
    reward_mean: float
    truncated_frac: float
    mean_length: float


def summarize(steps: list[StepStats]) -> dict[str, float]:
    """Median completions/s over steps, mean reward, truncation share and completion length."""
    return {"completions_per_s": statistics.median(s.completions / s.seconds for s in steps),
            "reward_mean": statistics.fmean(s.reward_mean for s in steps),
            "truncated_frac": statistics.fmean(s.truncated_frac for s in steps),
            "mean_length": statistics.fmean(s.mean_length for s in steps)}


def headline(policy_dir: str | Path) -> Setup:
    """The quickstart's rl stage (its prompts, group size, learning rate, truncation masking and
    max_new_tokens default) from an imitation-trained policy."""
    q = quickstart()
    return Setup("quickstart", str(policy_dir), q.prompts, q.group, q.max_new_tokens, q.rl_lr,
                 q.rl_settings["mask_truncated"])


def overhead(policy_dir: str | Path) -> Setup:
    """The old row: an untrained policy, 8 prompts x 8, at most 8 new tokens. Every reward is 0,
    so nothing is learnt: it measures each side's fixed cost per step."""
    return Setup("overhead", str(policy_dir), 8, 8, 8, 1e-4, False)


def untrained_policy(directory: str | Path) -> Path:
    """The quickstart's fresh Llama (as the rl stage would build it), saved in HF format."""
    from alphaloop.envs.registry import make_env
    from alphaloop.policies.lm import LMArch, LMPolicy
    from alphaloop.seeding import derive_seed

    q = quickstart()
    env = make_env(q.env["name"], split="train", seed=0, **q.env["knobs"])
    LMPolicy.build(LMArch(**q.arch), alphabet=env.alphabet, seed=derive_seed(q.seed, "init")).save(directory)
    return Path(directory)


def alphaloop_recipe(setup: Setup, threads: int, steps: int, seed: int = 0):
    """The `rl` stage as the quickstart runs it, starting from `setup.policy_dir`."""
    q = quickstart()
    return validate_recipe({
        "name": "bench-rl", "seed": seed, "threads": threads, "env": q.env,
        "policy": {"kind": "lm", "pretrained": setup.policy_dir},
        "stages": [{"kind": "rl", "algorithm": "grpo", "steps": steps, "prompts_per_step": setup.prompts,
                    "group_size": setup.group, "max_new_tokens": setup.max_new_tokens, "lr": setup.lr,
                    "mask_truncated": setup.mask_truncated, "eval_every": 10**6, "eval_problems": 1,
                    "checkpoint_every": 10**6}],
    })


def alphaloop_steps(setup: Setup, threads: int, steps: int, seed: int = 0) -> list[StepStats]:
    """Run `steps` steps of the `rl` stage; one StepStats per step, from its metrics log."""
    recipe = alphaloop_recipe(setup, threads, steps, seed)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = runner.prepare_run_dir(recipe, Path(tmp) / "run")
        runner.run(recipe, run_dir, show_progress=False)
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    n = setup.prompts * setup.group
    return [StepStats(n / r["samples_per_s"], n, r["reward_mean"], r["truncated_frac"], r["response_length"])
            for r in records if r.get("stage") == "rl" and "samples_per_s" in r]


def rl_problems(setup: Setup, steps: int, seed: int = 0) -> list:
    """The problems the `rl` stage of `alphaloop_recipe(setup, ..., seed)` draws, step by step
    (`prompts` per step, from the stage's own seeds): TRL is given the same ones, in this order."""
    from alphaloop.stages.context import StageContext

    ctx = StageContext(run_dir=Path(tempfile.gettempdir()), recipe=alphaloop_recipe(setup, 1, steps, seed),
                       logger=None, progress=None)  # type: ignore[arg-type]  # only its seeds and env are used
    env = ctx.make_env("train", seed=ctx.seed("env"))
    problems = []
    for step in range(steps):
        rng = random.Random(ctx.seed("prompts", step))
        problems += [env.sample_problem(rng, "train") for _ in range(setup.prompts)]
    return problems


def trl_prompt(tokenizer, prompt: str) -> str:
    """The text TRL is given for a prompt: TRL tokenizes it as is, and our prompts start with BOS."""
    return tokenizer.bos_token + prompt


def trl_config(setup: Setup, threads: int, steps: int, seed: int, output_dir: str) -> Any:
    """TRL's GRPOConfig for `setup`: the `rl` stage's algorithm in TRL's terms (beta 0, one pass,
    token-mean loss = "dapo", group mean/std advantages, clip 0.2, AdamW betas (0.9, 0.99),
    grad clip 1, constant lr), CPU, fp32, no gradient checkpointing, logging or saving; prompts
    in dataset order (no shuffling), so step k gets the `rl` stage's step-k prompts (`rl_problems`)."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=output_dir, per_device_train_batch_size=setup.prompts * setup.group,
        num_generations=setup.group, gradient_accumulation_steps=1, max_completion_length=setup.max_new_tokens,
        temperature=1.0, top_k=0, top_p=1.0, beta=0.0, num_iterations=1, epsilon=0.2, loss_type="dapo",
        scale_rewards="group", mask_truncated_completions=setup.mask_truncated, learning_rate=setup.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, adam_beta2=0.99, max_grad_norm=1.0,
        max_steps=steps, shuffle_dataset=False, logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
        bf16=False, fp16=False, gradient_checkpointing=False, dataloader_num_workers=0, seed=seed, disable_tqdm=True)


def trl_steps(setup: Setup, threads: int, steps: int, seed: int = 0) -> list[StepStats]:
    """Run `steps` GRPOTrainer steps on `setup`, on the prompts the `rl` stage with this seed sees;
    one StepStats per step (`on_step_begin` -> `on_step_end`; rewards, lengths and truncation
    from the completions its reward function sees)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import GRPOTrainer

    from alphaloop.envs.registry import make_env

    q = quickstart()
    env = make_env(q.env["name"], split="train", seed=seed, **q.env["knobs"])
    problems = rl_problems(setup, steps, seed)
    tokenizer = AutoTokenizer.from_pretrained(setup.policy_dir)
    dataset = Dataset.from_list([{"prompt": trl_prompt(tokenizer, p.prompt), "index": i}
                                 for i, p in enumerate(problems)])
    seen: list[tuple[float, float, float]] = []  # per step: reward mean, truncated share, mean length
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id}

    def verifier(prompts, completions, index, completion_ids, **_) -> list[float]:
        rewards = [1.0 if env.verify(problems[i], c) else 0.0 for i, c in zip(index, completions)]
        seen.append((statistics.fmean(rewards), statistics.fmean(ids[-1] not in ends for ids in completion_ids),
                     statistics.fmean(len(ids) for ids in completion_ids)))
        return rewards

    times: list[float] = []

    with tempfile.TemporaryDirectory() as out:
        model = AutoModelForCausalLM.from_pretrained(setup.policy_dir, dtype=torch.float32)
        trainer = GRPOTrainer(model=model, reward_funcs=verifier, args=trl_config(setup, threads, steps, seed, out),
                              train_dataset=dataset, processing_class=tokenizer, callbacks=[step_timer(times)])
        trainer.remove_callback(PrinterCallback)  # its end-of-training log line
        torch.set_num_threads(threads)
        trainer.train()
    n = setup.prompts * setup.group
    return [StepStats(t, n, *s) for t, s in zip(times, seen)]
