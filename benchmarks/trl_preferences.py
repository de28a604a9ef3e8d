"""Side by side: TRL's `RewardTrainer` / `DPOTrainer` and alphaloop's `reward_model` / `dpo` steps,
on the same model, pairs and batches.

Two rows (`--rows reward dpo`):

  reward  a Bradley-Terry reward model: the backbone plus a scalar head, one member (the stage
          trains `ensemble` of them, each exactly like this), lr 5e-4 (recipes/rlhf.toml's).
  dpo     DPO, loss "sigmoid", beta 0.1, lr 1e-4 (the `dpo` stage's defaults), against the
          policy the run starts from as the frozen reference, whose log-probs both sides
          precompute once for the whole dataset before training (the stage always does; TRL with
          `precompute_ref_log_probs=True`), so a step is one policy forward and backward on each
          side. A third line shows TRL's default, a reference forward in every step: not the
          ratio's, it does more work than our step.

The model is recipes/rlhf.toml's policy (the assistant env's character tokenizer, its Llama arch:
width 128, 4 layers, 4 heads, MLP 384), built as a fresh run builds it and left untrained: no
text is generated here, so a step's work is set by the pairs' token counts, not by the weights
(the losses start at log 2 and fall on both sides all the same). It is saved in HF format once;
TRL loads those weights with `AutoModelForSequenceClassification(num_labels=1)` (reward, its
score head given our head's initial weights) or `AutoModelForCausalLM` (DPO). The pairs are the
assistant env's (`collect_pairs`, source "variants": two of the env's response kinds per training
prompt, ordered by its labellers), (warmup + steps) x batch of them, and both sides take them in
the same order, `--batch-size` pairs per step (TRL: `train_sampling_strategy="sequential"`), no
pair seen twice. Responses are under 70 characters, so TRL's `max_length` is off (None).

Equal: the token sequences (TRL gets "<bos>" + prompt, as our prompts start with BOS, and appends
EOS to each response itself, as we do; the printed real tokens per pair agree), the losses (TRL's
"sigmoid" DPO loss is ours; Bradley-Terry without margin), the initial weights and head, AdamW
(betas (0.9, 0.999) for the reward model, (0.9, 0.99) for DPO, no weight decay), grad clip 1.0,
a constant lr, CPU, fp32, the same thread count; TRL without gradient checkpointing (its default
is on, which would only slow it down), logging, saving or evaluation. A step is timed from the
batch's forward to the end of the optimizer step: TRL from `on_step_begin` to `on_step_end`
(forward, loss and its metrics, backward, clip, AdamW, lr scheduler, zero_grad); ours around the
stages' loop body (tokenizing and packing the batch, forward of chosen + rejected, loss,
backward, clip, AdamW), called on the library objects the stages use.

Not equal, by design: each pair's prompt is shared by its chosen and rejected response, and our
forward computes it once for both (prefix sharing, alphaloop/policies/prefix.py), where TRL runs
prompt + response rows; and our token-wise ops (every matmul, norm and MLP) run over real tokens
only, gathered into padded layouts just for attention (responses in buckets of similar length),
where TRL's run over padded rows; and our last layer runs its output projection and MLP only for
the states the loss reads (the reward model: one per response; DPO: those that predict response
tokens), where TRL's runs them for every position. The
printed "positions computed per pair" (by the token-wise ops, padding included) shows the
difference in work this makes.
Against us: our tokenizing and packing is inside the timed span (TRL's tokenizing happens before
training and its collation before `on_step_begin`). Against TRL: its reward pooling reads the state
at EOS, ours the state that predicts EOS (the same tokens run, a different position read); its
DPO step also computes metrics (entropy, mean logits, top-1 accuracy) with its fused LM head.
Both sides' AdamW is PyTorch's fused kernel (TRL's default `adamw_torch_fused`, the stages'
`learners.optim.adamw`).

Printed per side: pairs/s (median over steps), the loss at the first and the last step, real
tokens per pair (the prompt counted with each response) and positions computed per pair. The
sides run back to back in rounds (alphaloop, then TRL, `--rounds` times, `--steps` timed steps
each after `--warmup` untimed ones, each run from the same initial weights), so load from other
processes hits both alike; the ratio is the median over rounds of (our pairs/s / TRL's).

    .venv/bin/pip install -c constraints.txt trl     # benchmark only: the `bench` extra
    python benchmarks/trl_preferences.py [--threads 2] [--rounds 3] [--steps 10] [--rows reward dpo]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine, paired_parser, step_timer, trl_missing  # noqa: E402

from alphaloop.policies import matmul  # noqa: E402

RLHF = REPO / "recipes" / "rlhf.toml"
HEAD_SEED = 0
ROWS = {"reward": {"lr": 5e-4, "betas": (0.9, 0.999)}, "dpo": {"lr": 1e-4, "betas": (0.9, 0.99), "beta": 0.1}}


@dataclass(frozen=True)
class StepStats:
    seconds: float
    pairs: int
    loss: float
    tokens: int      # real tokens of the step's sequences (a prompt counted with each of its responses)
    positions: int   # token positions the forward computed, padding included


def summarize(steps: list[StepStats], warmup: int) -> dict[str, float]:
    """Median pairs/s over the timed steps; first and last loss; tokens and positions per pair."""
    timed = steps[warmup:]
    pairs = sum(s.pairs for s in steps)
    return {"pairs_per_s": statistics.median(s.pairs / s.seconds for s in timed), "loss_first": steps[0].loss,
            "loss_last": steps[-1].loss, "tokens": sum(s.tokens for s in steps) / pairs,
            "positions": sum(s.positions for s in steps) / pairs}


def rlhf_policy(directory: str | Path) -> Path:
    """recipes/rlhf.toml's fresh policy (as a run builds it), saved in HF format."""
    from alphaloop.envs.registry import make_env
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.recipe import load_recipe
    from alphaloop.seeding import derive_seed

    recipe = load_recipe(RLHF)
    env = make_env(recipe.env.name, split="train", seed=0, **recipe.env.knobs)
    LMPolicy.build(recipe.policy.arch, alphabet=env.alphabet, seed=derive_seed(recipe.seed, "init")).save(directory)
    return Path(directory)


def preference_pairs(n: int) -> list:
    """n labelled pairs of the assistant env's response kinds, one per training prompt."""
    from alphaloop.collect.preferences import collect_pairs
    from alphaloop.envs.registry import make_env
    from alphaloop.recipe import load_recipe

    recipe = load_recipe(RLHF)
    env = make_env(recipe.env.name, split="train", seed=0, **recipe.env.knobs)
    problems = [env.sample_problem(random.Random(i), "train") for i in range(n)]
    return collect_pairs(env, problems, random.Random(0), "variants")


def batches(pairs: list, batch: int) -> list[list]:
    return [pairs[start:start + batch] for start in range(0, len(pairs), batch)]


def our_work(policy, batch: list) -> tuple[int, int]:
    """(real tokens, positions computed) of our forward over `batch`: the token-wise ops (matmuls,
    norms, MLP) run over each distinct prompt's real tokens once and each response's + EOS, no
    padding (policies/prefix.py); only attention sees the padded layout."""
    from alphaloop.batch import pack_completions

    prompts = [policy.prompt_ids(p.prompt) for p in batch] * 2
    responses = [policy.encode(r) + [policy.eos_id] for r in [p.chosen for p in batch] + [p.rejected for p in batch]]
    packed = pack_completions(prompts, responses, policy.pad_id)
    real = sum(map(len, prompts)) + sum(map(len, responses))
    return real, int(packed.prompt_lens.sum()) + int(packed.mask.sum())


def reward_head(policy_dir: str) -> tuple[object, torch.Tensor]:
    """A reward-model member on the saved policy, and its initial head weight [1, H] (TRL's starts from it)."""
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.scorers.reward_model import RewardModel

    member = RewardModel.from_policy(LMPolicy.load(policy_dir), HEAD_SEED)
    return member, member.backbone.value_head.weight.detach().clone()


def alphaloop_reward(policy_dir: str, pairs: list, batch: int) -> list[StepStats]:
    """The `reward_model` stage's step for one member: rewards of chosen + rejected, Bradley-Terry,
    backward, clip 1.0, AdamW."""
    from alphaloop.learners.optim import adamw
    from alphaloop.learners.reward_model import bradley_terry_loss

    member, _ = reward_head(policy_dir)
    params = list(member.parameters())
    optimizer = adamw(params, ROWS["reward"]["lr"], 0.0)
    member.train()
    stats = []
    for part in batches(pairs, batch):
        work = our_work(member.backbone, part)
        began = time.perf_counter()
        rewards = member.rewards([p.prompt for p in part] * 2, [p.chosen for p in part] + [p.rejected for p in part])
        loss, info = bradley_terry_loss(rewards[:len(part)], rewards[len(part):])
        stats.append(optimizer_step(loss, optimizer, params, began, len(part), info["loss"], work))
    return stats


def optimizer_step(loss, optimizer, params, began: float, pairs: int, loss_value: float, work) -> StepStats:
    """The end of both stages' steps: backward, clip 1.0, AdamW; the step's timing and work."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return StepStats(time.perf_counter() - began, pairs, loss_value, *work)


def alphaloop_dpo(policy_dir: str, pairs: list, batch: int) -> list[StepStats]:
    """The `dpo` stage's step: reference log-probs precomputed for all pairs (untimed, as the stage
    does before its loop), then per step the policy's sequence log-probs of chosen + rejected,
    the sigmoid loss, backward, clip 1.0, AdamW."""
    from alphaloop.learners.dpo import dpo_loss
    from alphaloop.learners.optim import adamw
    from alphaloop.policies.lm import LMPolicy
    from alphaloop.stages.dpo import pair_logprobs, sequence_logprobs

    reference = LMPolicy.load(policy_dir)
    reference.requires_grad_(False)
    reference.model.eval()
    ref_chosen, ref_rejected = pair_logprobs(reference, pairs)
    policy = LMPolicy.load(policy_dir)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = adamw(params, ROWS["dpo"]["lr"], 0.0, betas=ROWS["dpo"]["betas"])
    policy.model.train()
    stats = []
    for k, part in enumerate(batches(pairs, batch)):
        work = our_work(policy, part)
        began = time.perf_counter()
        both = sequence_logprobs(policy, [p.prompt for p in part] * 2, [p.chosen for p in part]
                                 + [p.rejected for p in part])
        index = torch.arange(k * batch, k * batch + len(part))
        loss, info = dpo_loss(both[:len(part)], both[len(part):], ref_chosen[index], ref_rejected[index],
                              ROWS["dpo"]["beta"], "sigmoid")
        stats.append(optimizer_step(loss, optimizer, params, began, len(part), info["loss"], work))
    return stats


def trl_config(kind: str, batch: int, steps: int, seed: int, output_dir: str, precompute: bool = True):
    """TRL's RewardConfig / DPOConfig for the row: the settings in the module docstring."""
    from trl import DPOConfig, RewardConfig

    row = ROWS[kind]
    common = dict(
        output_dir=output_dir, per_device_train_batch_size=batch, gradient_accumulation_steps=1, max_steps=steps,
        learning_rate=row["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        adam_beta1=row["betas"][0], adam_beta2=row["betas"][1], max_grad_norm=1.0, max_length=None,
        train_sampling_strategy="sequential", logging_strategy="no", save_strategy="no", eval_strategy="no",
        report_to=[], use_cpu=True, bf16=False, fp16=False, gradient_checkpointing=False, dataloader_num_workers=0,
        seed=seed, disable_tqdm=True)
    if kind == "reward":
        return RewardConfig(**common)
    return DPOConfig(**common, beta=row["beta"], loss_type=["sigmoid"], precompute_ref_log_probs=precompute)


def trl_steps(kind: str, policy_dir: str, pairs: list, batch: int, threads: int, seed: int = 0,
              precompute: bool = True) -> list[StepStats]:
    """Run len(pairs) / batch steps of TRL's trainer for the row; one StepStats per step
    (`on_step_begin` -> `on_step_end`; loss and token counts from its `compute_loss`)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOTrainer, RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    dataset = Dataset.from_list([{"prompt": tokenizer.bos_token + p.prompt, "chosen": p.chosen,
                                  "rejected": p.rejected} for p in pairs])
    steps = len(batches(pairs, batch))
    times: list[float] = []
    seen: list[tuple[float, int, int]] = []

    with tempfile.TemporaryDirectory() as out:
        args = trl_config(kind, batch, steps, seed, out, precompute)
        if kind == "reward":
            model = AutoModelForSequenceClassification.from_pretrained(policy_dir, num_labels=1, dtype=torch.float32)
            with torch.no_grad():
                model.score.weight.copy_(reward_head(policy_dir)[1])
            trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                    callbacks=[step_timer(times)])
        else:
            model = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
            reference = None if precompute else AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
            trainer = DPOTrainer(model=model, ref_model=reference, args=args, train_dataset=dataset,
                                 processing_class=tokenizer, callbacks=[step_timer(times)])
        trainer.remove_callback(PrinterCallback)  # its end-of-training log line
        compute_loss = trainer.compute_loss

        def recorded(model, inputs, *rest, **kwargs):
            result = compute_loss(model, inputs, *rest, **kwargs)
            loss = result[0] if isinstance(result, tuple) else result
            seen.append((float(loss.detach()), int(inputs["attention_mask"].sum()), inputs["input_ids"].numel()))
            return result

        trainer.compute_loss = recorded
        torch.set_num_threads(threads)
        trainer.train()
    sizes = [len(part) for part in batches(pairs, batch)]
    return [StepStats(t, n, *s) for t, n, s in zip(times, sizes, seen)]


def compare(kind: str, policy_dir: str, batch: int, threads: int, rounds: int, steps: int, warmup: int) -> None:
    """Run one row in paired rounds and print each side's figures and the ratio."""
    pairs = preference_pairs((steps + warmup) * batch)
    ours = alphaloop_reward if kind == "reward" else alphaloop_dpo
    sides = {"alphaloop": lambda r: ours(policy_dir, pairs, batch),
             "TRL": lambda r: trl_steps(kind, policy_dir, pairs, batch, threads, seed=r)}
    if kind == "dpo":
        sides["TRL ref/step"] = lambda r: trl_steps(kind, policy_dir, pairs, batch, threads, seed=r, precompute=False)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for round_index in range(rounds):
        line = []
        for name, run in sides.items():
            torch.set_num_threads(threads)
            runs[name].append(summarize(run(round_index), warmup))
            line.append(f"{name} {runs[name][-1]['pairs_per_s']:.0f}")
        ratio = runs["alphaloop"][-1]["pairs_per_s"] / runs["TRL"][-1]["pairs_per_s"]
        print(f"  round {round_index + 1}: {', '.join(line)} pairs/s, ratio {ratio:.2f}x", flush=True)
    row = ROWS[kind]
    print(f"{kind}: {batch} pairs per step, lr {row['lr']:g}" + (f", beta {row['beta']:g}" if "beta" in row else ""))
    for name, summaries in runs.items():
        s = {key: statistics.median(x[key] for x in summaries) for key in summaries[0]}
        print(f"  {name:>12}: {s['pairs_per_s']:6.0f} pairs/s, loss {s['loss_first']:.3f} (step 1) -> "
              f"{s['loss_last']:.3f} (step {steps + warmup}), {s['tokens']:.1f} real tokens/pair, "
              f"{s['positions']:.1f} positions computed/pair")
    for name in [n for n in runs if n != "alphaloop"]:
        ratios = [ours_["pairs_per_s"] / theirs["pairs_per_s"] for ours_, theirs in zip(runs["alphaloop"], runs[name])]
        print(f"  ratio alphaloop / {name} (median of {rounds} paired rounds): {statistics.median(ratios):.2f}x",
              flush=True)


def main() -> None:
    parser = paired_parser(__doc__)
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    parser.add_argument("--rows", nargs="+", choices=tuple(ROWS), default=list(ROWS))
    args = parser.parse_args()
    print(machine())
    if trl_missing():
        return
    import datasets
    import trl
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()  # e.g. "score.weight newly initialized": we set it ourselves
    datasets.disable_progress_bars()
    os.environ["TQDM_DISABLE"] = "1"  # DPOTrainer's reference precompute bar
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices from transformers/TRL
    torch.set_num_threads(args.threads)
    print(f"TRL {trl.__version__}, {args.threads} threads, fp32")
    with tempfile.TemporaryDirectory() as directory:
        policy_dir = str(rlhf_policy(directory))
        print(f"policy: recipes/rlhf.toml's, untrained ({policy_dir})")
        for row in args.rows:
            print(f"\n{row}:")
            compare(row, policy_dir, args.batch_size, args.threads, args.rounds, args.steps, args.warmup)
    print(f"\nlinears: {matmul.describe()}")


if __name__ == "__main__":
    main()
