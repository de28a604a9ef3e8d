"""Batched autoregressive sampling over the model's KV cache, with per-token log-probs.

Generation dominates RL time, so this is a tight loop: left-pad the prompts into one
rectangle, one prefill forward over all of them, then one forward of a single new token per
step against the preallocated cache, stopping as soon as every row has produced EOS.

Log-probs. For every sampled token y_t we return log pi(y_t | x, y_<t) under the model's *raw*
distribution (softmax of the logits: temperature 1, no top-k), not under the tempered or
truncated distribution we actually sampled from. Policy-gradient ratios
pi_theta(y) / pi_old(y) compare the same model family at two parameter values, so both sides
must be the raw model probability; a learner recomputing pi_theta with a plain forward pass
gets exactly these numbers at theta = theta_old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alphaloop.policies.llama import LeanLlama


@dataclass
class Samples:
    """Per prompt: completion token ids (EOS included if produced, nothing after it), the raw
    log-prob of each of those tokens, and whether the row hit max_new_tokens without EOS."""

    completion_ids: list[list[int]]
    logprobs: list[list[float]]
    truncated: list[bool]


def _check(prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float, top_k: int) -> None:
    if not prompts:
        raise ValueError("prompts: expected at least one prompt (a list of token ids)")
    for i, prompt in enumerate(prompts):
        if len(prompt) == 0:
            raise ValueError(f"prompts[{i}]: expected a non-empty list of token ids (start prompts with BOS)")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens: expected >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature: expected >= 0 (0 = greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k: expected >= 0 (0 = no truncation), got {top_k}")


def _logprob_and_choice(logits: torch.Tensor, temperature: float, top_k: int,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(next token per row, its raw log-prob log softmax(logits)[token]).

    The token is the argmax at temperature 0, else a draw from softmax(logits / T) over the top
    k, by the exponential race: argmax_i p_i / E_i with E_i ~ Exp(1) i.i.d. picks i with
    probability p_i (the same trick `torch.multinomial` uses for one sample; E = -log U from
    uniforms is several times cheaper here than `Tensor.exponential_`).
    """
    logp = torch.log_softmax(logits, dim=-1)
    if temperature == 0:
        token = logits.argmax(dim=-1)
    else:
        if temperature == 1.0 and not 0 < top_k < logits.shape[-1]:
            probs = logp.exp()
        else:
            scaled = logits / temperature if temperature != 1.0 else logits
            if 0 < top_k < scaled.shape[-1]:
                kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            probs = torch.softmax(scaled, dim=-1)
        race = torch.rand(probs.shape, generator=generator, device=probs.device).log_().neg_()
        token = (probs / race).argmax(dim=-1)
    return token, logp.gather(-1, token[:, None]).squeeze(1)


def sample(policy, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 1.0,
           top_k: int = 0, generator: torch.Generator | None = None) -> Samples:
    """Complete every prompt (token ids, BOS included) with up to `max_new_tokens` tokens.

    temperature 0 is greedy decoding (and then matches HF `generate(do_sample=False)`); for a
    fixed `generator` seed, sampling is reproducible.

    With our Llama, repeated prompts are prefilled once, and rows that have produced EOS are
    dropped from the batch (and from the KV cache) once at least an eighth of the rows still in
    it have finished, so later steps only compute the rows still generating (copying the cache
    costs a fraction of a step, so it waits for several rows rather than going one at a time).
    """
    _check(prompts, max_new_tokens, temperature, top_k)
    model, eos, pad = policy.model, policy.eos_id, policy.pad_id
    device = next(model.parameters()).device
    batch, width = len(prompts), max(len(p) for p in prompts)
    lean = isinstance(model, LeanLlama)  # its cache can drop and repeat rows

    # Repeated prompts (G samples per prompt in RL, k in pass@k) are prefilled once; the cache
    # rows are then repeated, so the prompt's forward pass is not redone G times.
    unique: dict[tuple[int, ...], int] = {}
    source = [unique.setdefault(tuple(p), len(unique)) for p in prompts] if lean else list(range(batch))
    firsts = list(unique) if lean else [tuple(p) for p in prompts]
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in firsts], dtype=torch.long, device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in firsts], dtype=torch.long, device=device)
    source = torch.as_tensor(source, dtype=torch.long, device=device)
    # Left padding: real tokens count from 0, or the ids of the policy's position rule (positions.py);
    # either way each decoded token sits one past the one before it.
    positions = policy.position_ids(ids, mask)
    next_position = positions[source, -1:] + 1

    # Per step: the tokens drawn, their log-probs, and which original rows they belong to (None
    # while no row has been dropped); scattered into [batch, steps] once at the end.
    drawn: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
    rows: torch.Tensor | None = None  # original row of each row still in the batch, once some are dropped
    finished = torch.zeros(batch, dtype=torch.bool, device=device)  # ... and whether it has stopped
    done = 0  # finished rows still in the batch
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            cache = model.new_cache(len(firsts), width + max_new_tokens)
            logits = model(ids, position_ids=positions, attention_mask=mask, kv_cache=cache, logits_to_keep=1)[:, -1]
            if len(firsts) < batch:
                cache.select(source)
                logits = logits[source]
            for step in range(max_new_tokens):
                token, raw = _logprob_and_choice(logits.float(), temperature, top_k, generator)
                if done:
                    token = token.masked_fill(finished, pad)
                drawn.append((token, raw, rows))
                finished |= token == eos
                if step + 1 == max_new_tokens:
                    break
                done = int(finished.sum())
                if done == len(finished):
                    break
                if lean and done and 8 * done >= len(finished):
                    keep = (~finished).nonzero().squeeze(1)
                    cache.select(keep)
                    rows = keep if rows is None else rows[keep]
                    token, next_position, finished, done = token[keep], next_position[keep], finished[keep], 0
                logits = model(token[:, None], position_ids=next_position, kv_cache=cache)[:, -1]
                next_position = next_position + 1
    finally:
        model.train(was_training)

    steps = len(drawn)
    tokens = torch.full((batch, steps), pad, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, steps), dtype=torch.float32, device=device)
    full = [step for step, (_, _, rows) in enumerate(drawn) if rows is None]  # a prefix of the steps
    if full:
        tokens[:, : len(full)] = torch.stack([token for token, _, _ in drawn[: len(full)]], dim=1)
        logprobs[:, : len(full)] = torch.stack([raw for _, raw, _ in drawn[: len(full)]], dim=1)
    if len(full) < steps:
        rest = drawn[len(full):]
        row_index = torch.cat([rows for _, _, rows in rest])
        step_index = torch.repeat_interleave(torch.arange(len(full), steps, device=device),
                                             torch.tensor([len(rows) for _, _, rows in rest], device=device))
        tokens[row_index, step_index] = torch.cat([token for token, _, _ in rest])
        logprobs[row_index, step_index] = torch.cat([raw for _, raw, _ in rest])

    completion_ids, completion_logprobs, truncated = [], [], []
    for row_tokens, row_logprobs in zip(tokens.tolist(), logprobs.tolist()):
        end = row_tokens.index(eos) + 1 if eos in row_tokens else len(row_tokens)
        completion_ids.append(row_tokens[:end])
        completion_logprobs.append(row_logprobs[:end])
        truncated.append(eos not in row_tokens)
    return Samples(completion_ids, completion_logprobs, truncated)
