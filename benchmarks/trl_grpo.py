"""Side by side: TRL's `GRPOTrainer` and alphaloop's `rl` stage, one GRPO step each, same setup.

Both sides train the same model from the same initial weights (the default Llama arch over the
arithmetic env's character tokenizer, saved in HF format and loaded by TRL with
`AutoModelForCausalLM`) on 1-3 digit addition prompts, rewarded by the env's exact verifier:
8 prompts x 8 completions per step, at most 8 new tokens, temperature 1, no top-k/top-p, beta 0
(no reference model), one optimisation pass per batch, token-mean loss (TRL's "dapo"), group
mean/std advantages, AdamW at lr 1e-4, CPU, fp32, the same thread count. TRL runs without
gradient checkpointing (its default is on, which would only slow it down) and without logging
or saving.

A step is timed from the start of generation to the end of the optimizer step on both sides
(TRL: `on_step_begin` -> `on_step_end`; alphaloop: the `rl` stage's own per-step timing, which
covers the same span). The two run back to back in rounds (alphaloop then TRL, `--rounds`
times, `--steps` steps each after `--warmup` untimed ones), so load from other processes hits
both alike; the ratio reported is the median over rounds of (our completions/s / TRL's).

    .venv/bin/pip install -c constraints.txt trl     # benchmark only: the `bench` extra
    python benchmarks/trl_grpo.py [--threads 2] [--rounds 3] [--steps 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_step import ENV, GROUP, LR, MAX_NEW_TOKENS, PROMPTS, alphaloop_steps, bench_recipe  # noqa: E402

from alphaloop.envs.registry import make_env  # noqa: E402
from alphaloop.policies.lm import LMPolicy  # noqa: E402
from alphaloop.seeding import derive_seed  # noqa: E402


def trl_step_times(model_dir: str, threads: int, steps: int, warmup: int, seed: int) -> list[float]:
    """Seconds per GRPOTrainer step (after `warmup` steps) on the benchmark setup."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    env = make_env(ENV["name"], split="train", seed=seed, **ENV["knobs"])
    rng = random.Random(seed)
    problems = [env.sample_problem(rng, "train") for _ in range(PROMPTS * (steps + warmup) * 2)]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # TRL tokenizes the prompt text as is; our prompts start with BOS, written as its token text.
    dataset = Dataset.from_list([{"prompt": tokenizer.bos_token + p.prompt, "index": i}
                                 for i, p in enumerate(problems)])

    def verifier(prompts, completions, index, **_) -> list[float]:
        return [1.0 if env.verify(problems[i], c) else 0.0 for i, c in zip(index, completions)]

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.perf_counter() - self.began)

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, per_device_train_batch_size=PROMPTS * GROUP, num_generations=GROUP,
            gradient_accumulation_steps=1, max_completion_length=MAX_NEW_TOKENS, temperature=1.0, top_k=0,
            top_p=1.0, beta=0.0, num_iterations=1, loss_type="dapo", scale_rewards="group",
            mask_truncated_completions=False, learning_rate=LR, lr_scheduler_type="constant",
            adam_beta2=0.99, max_grad_norm=1.0, max_steps=steps + warmup, logging_steps=10_000,
            save_strategy="no", report_to=[], use_cpu=True, bf16=False, fp16=False,
            gradient_checkpointing=False, dataloader_num_workers=0, seed=seed, disable_tqdm=True,
        )
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        trainer = GRPOTrainer(model=model, reward_funcs=verifier, args=config, train_dataset=dataset,
                              processing_class=tokenizer, callbacks=[StepTimer()])
        torch.set_num_threads(threads)
        trainer.train()
    return times[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps at the start of each run")
    args = parser.parse_args()
    if importlib.util.find_spec("trl") is None:
        print("TRL is not installed; it is a benchmark-only dependency:\n"
              "    .venv/bin/pip install -c constraints.txt trl      (or: pip install -e '.[bench]')")
        return
    import trl
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices from transformers/TRL

    recipe = bench_recipe(args.threads, args.steps + args.warmup)
    env = make_env(ENV["name"], split="train", seed=0, **ENV["knobs"])
    policy = LMPolicy.build(recipe.policy.arch, alphabet=env.alphabet, seed=derive_seed(recipe.seed, "init"))
    completions_per_step = PROMPTS * GROUP
    ours_rates, trl_rates, ratios = [], [], []
    with tempfile.TemporaryDirectory() as model_dir:
        policy.save(model_dir)  # exactly the weights the `rl` stage starts from
        for round_index in range(args.rounds):
            torch.set_num_threads(args.threads)
            records = alphaloop_steps(args.threads, args.steps + args.warmup, seed=0)[args.warmup:]
            ours = statistics.median(r["samples_per_s"] for r in records)
            theirs = completions_per_step / statistics.median(
                trl_step_times(model_dir, args.threads, args.steps, args.warmup, seed=round_index))
            ours_rates.append(ours)
            trl_rates.append(theirs)
            ratios.append(ours / theirs)
            print(f"round {round_index + 1}: alphaloop {ours:.0f} completions/s, TRL {theirs:.0f} completions/s, "
                  f"ratio {ours / theirs:.2f}x", flush=True)
    print(f"GRPO step, {PROMPTS} prompts x {GROUP} completions, <= {MAX_NEW_TOKENS} new tokens, "
          f"{policy.num_parameters / 1e6:.2f}M-param Llama, {args.threads} threads, TRL {trl.__version__}: "
          f"alphaloop {statistics.median(ours_rates):.0f} completions/s, TRL GRPOTrainer "
          f"{statistics.median(trl_rates):.0f} completions/s; paired ratio (median over "
          f"{args.rounds} rounds) {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
