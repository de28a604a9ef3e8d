"""The training forward pass with each prompt computed once for all of its completions.

GRPO-style batches hold G completions per prompt (Shao et al. 2024). A plain forward over
`prompt + completion` rows computes every prompt G times, although its hidden states, keys and
values are the same in every copy: causal attention means a prompt token never sees what
follows it. Here the P distinct prompts [P, Tp] and the N completions [N, Tc] run through the
layers as one stream of their real tokens (every token-wise op, matmuls included, done once
over all of them, padding never); only attention differs:

    prompt tokens      attend causally within their prompt (as in the plain forward);
    completion tokens  attend to their prompt's keys/values (gathered, `prompt_of`) and
                       causally to their own completion.

This is prefix sharing as in serving engines (vLLM's prefix caching, SGLang's RadixAttention),
applied to training. The gradient is exact: a prompt's keys and values feed G rows, so the
backward pass of the gather sums their G contributions, which is what the G copies would have
received separately. Logits equal the plain forward's at every completion position, to fp32
rounding (tests/policies/test_prefix.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from alphaloop.policies.llama import LeanLlama
from alphaloop.policies.matmul import linear

# Completions are bucketed for attention in runs of BUCKET_STEP rows (of the length-sorted order),
# and a bucket costs its padded query-key pairs, rows x t x (prompt width + t), plus BUCKET_COST
# pairs for its fixed per-op costs (a gather, a cat, two batched matmuls and a softmax, and their
# backward). Measured (2-core Intel Xeon, fp32): preference pairs (64 responses of 21 tokens on
# average, 76 at most) train fastest at about 16 rows a bucket, GRPO groups (128 completions of
# 15-31 tokens) at one or two buckets; this cost picks about those.
BUCKET_STEP = 8
BUCKET_COST = 40_000


def _attention_buckets(lengths: list[int], widths: list[int], overhead: int = BUCKET_COST) -> list[int]:
    """Bucket sizes (in order) that split rows sorted by descending `lengths` (with their prompts'
    `widths`) at multiples of BUCKET_STEP rows at the least total cost (dynamic programming)."""
    cuts = list(range(0, len(lengths), BUCKET_STEP)) + [len(lengths)]
    best, choice = [0.0] + [float("inf")] * (len(cuts) - 1), [0] * len(cuts)
    for a in range(len(cuts) - 1):
        t, width = max(1, lengths[cuts[a]]), 0
        for b in range(a + 1, len(cuts)):
            width = max(width, *widths[cuts[b - 1]: cuts[b]])
            cost = best[a] + (cuts[b] - cuts[a]) * t * (width + t) + overhead
            if cost < best[b]:
                best[b], choice[b] = cost, a
    sizes, b = [], len(cuts) - 1
    while b > 0:
        sizes.append(cuts[b] - cuts[choice[b]])
        b = choice[b]
    return sizes[::-1]


class _Layout:
    """Where each token of a `completion_forward` batch lives, computed once for all layers.

    The stream holds the real tokens only: the prompts' in row order, then the completions'.
    Attention reads it through one gather (`gather`) into padded layouts: the prompts [P*Tp], then
    per bucket of completions (`buckets`: its completions and the longest of their prompts;
    `sizes`: each layout's gathered rows) each completion padded to the bucket's longest, [n, t];
    the keys and values of a bucket's prompts come from the prompts' layout. Padding slots point
    at stream row 0: a padding query's output is never read back and a padding key is masked, so
    its value never matters (and it receives an exactly zero gradient). `outputs` [R] picks each
    real token's attention output back out of the concatenated layouts; `predicting` [N,Tc] is the
    stream row of the state that predicts each completion token.
    """

    def __init__(self, prompt_lens: torch.Tensor, prompt_of: torch.Tensor, completion_lens: torch.Tensor,
                 Tp: int, Tc: int, rows_per_bucket: int | None) -> None:
        if rows_per_bucket is not None and rows_per_bucket < 1:
            raise ValueError(f"rows_per_bucket: expected a positive number of rows, got {rows_per_bucket}")
        device = prompt_lens.device
        P, N = len(prompt_lens), len(prompt_of)
        prompt_real = torch.arange(Tp, device=device)[None, :] < prompt_lens[:, None]  # [P,Tp]
        completion_real = torch.arange(Tc, device=device)[None, :] < completion_lens[:, None]  # [N,Tc]
        real = torch.cat([prompt_real.reshape(-1), completion_real.reshape(-1)])
        self.real = real.nonzero().squeeze(1)  # the stream's rows in the padded [P*Tp + N*Tc] layout
        slot = torch.zeros(real.shape[0], dtype=torch.long, device=device)
        slot[self.real] = torch.arange(len(self.real), device=device)  # stream row of each slot, 0 at padding
        self.prompt_rows = slot[: P * Tp]
        completion_slot = slot[P * Tp:].view(N, Tc)
        out_slot = torch.zeros_like(slot)
        out_slot[: P * Tp] = torch.arange(P * Tp, device=device)
        order = torch.argsort(completion_lens, descending=True, stable=True)
        gathers, self.buckets, self.biases, self.sizes = [self.prompt_rows], [], [], [P * Tp]
        start = P * Tp  # into the gathered rows, which are also the concatenated outputs' rows
        row_prompt_lens = prompt_lens[prompt_of]
        sizes = ([rows_per_bucket] if rows_per_bucket else
                 _attention_buckets(completion_lens[order].tolist(), prompt_lens[prompt_of[order]].tolist()))
        for rows in order.split(sizes if len(sizes) > 1 else sizes[0]):
            n, t = len(rows), max(1, int(completion_lens[rows].max()))
            width = int(row_prompt_lens[rows].max())
            gathers.append(completion_slot[rows, :t].reshape(-1))
            self.buckets.append((rows, width))
            self.sizes.append(n * t)
            out_slot[P * Tp:].view(N, Tc)[rows, :t] = start + torch.arange(n * t, device=device).view(n, t)
            start += n * t
            steps = torch.arange(t, device=device)
            # Query i of row r sees its prompt's real keys and its own completion's keys <= i.
            prompt_keys = torch.arange(width, device=device)[None, :] < row_prompt_lens[rows][:, None]  # [n,width]
            causal = steps[None, :] <= steps[:, None]  # [t,t]
            mask = torch.cat([prompt_keys[:, None, :].expand(n, t, width), causal[None].expand(n, t, t)], dim=2)
            self.biases.append(torch.zeros(mask.shape, device=device).masked_fill_(~mask, float("-inf"))[:, None, None])
        self.gather = torch.cat(gathers)
        self.outputs = out_slot[self.real]
        last_prompt = slot[prompt_of * Tp + prompt_lens[prompt_of] - 1]  # [N]
        self.predicting = torch.cat([last_prompt[:, None], completion_slot[:, : Tc - 1]], dim=1)  # [N,Tc]


def completion_forward(model: LeanLlama, prompt_ids: torch.Tensor, prompt_lens: torch.Tensor,
                       completion_ids: torch.Tensor, prompt_of: torch.Tensor,
                       completion_lens: torch.Tensor | None = None, with_logits: bool = True,
                       prompt_positions: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                       rows_per_bucket: int | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(logits [N,Tc,V], hidden [N,Tc,C]) where position t is the state that predicts completion
    token t: the prompt's last token for t = 0, completion token t-1 after that. `with_logits`
    False skips the LM head (logits None): a reward model reads only the hidden states.

    prompt_ids [P,Tp] right-padded distinct prompts with lengths prompt_lens [P] (>= 1);
    completion_ids [N,Tc] right-padded, with lengths completion_lens [N] (default: all Tc);
    padding positions give meaningless (finite) values, callers mask them; prompt_of [N] the
    prompt of each completion. `prompt_positions` [P,Tp] gives the prompts' RoPE position ids (a
    policy's position rule, `positions.py`); completion token t of a row then sits at its prompt's
    last id + 1 + t. Default: the prompt's token i at i, completion token t at prompt_len + t.
    `keep` [N,Tc] (bool) marks the positions whose states the caller reads (default: t < length,
    every real completion token); the others are meaningless too. The last layer runs its
    attention output projection and MLP for the kept states only (every layer's keys and values
    are still needed): a reward model reads one state per response, a log-prob one per
    completion token, and neither reads a prompt's states before its last token.

    Only real tokens run through the token-wise ops (every matmul, norm, RoPE and MLP): the
    stream holds the P prompts' and N completions' real tokens, and is gathered into padded
    layouts only around attention (as FlashAttention's varlen path "unpads" BERT batches).
    Completions of a preference pair or a GRPO group differ a lot in length, so their attention
    runs in buckets of completions of similar length (sorted; `_attention_buckets` sizes them, or
    `rows_per_bucket` rows each), each padded only to its own longest row and its prompts'
    longest: one layout padded to the batch's longest completion spent most of attention's time
    on padding (preference pairs: responses of 21
    tokens on average, 76 at most).
    """
    P, Tp = prompt_ids.shape
    N, Tc = completion_ids.shape
    device = prompt_ids.device
    if prompt_of.shape != (N,) or prompt_lens.shape != (P,):
        raise ValueError(f"prompt_of: expected shape ({N},) and prompt_lens ({P},), "
                         f"got {tuple(prompt_of.shape)} and {tuple(prompt_lens.shape)}")
    if completion_lens is None:
        completion_lens = torch.full((N,), Tc, dtype=torch.long, device=device)
    row_lens = prompt_lens[prompt_of]
    steps = torch.arange(Tc, device=device)
    if prompt_positions is None:
        positions = torch.cat([torch.arange(Tp, device=device).repeat(P), (row_lens[:, None] + steps).reshape(-1)])
        needed = Tp + Tc
    else:  # decoding continues the prompt's last id one by one (as the sampler does)
        last = prompt_positions.gather(1, (prompt_lens - 1)[:, None]).squeeze(1)[prompt_of]
        positions = torch.cat([prompt_positions.reshape(-1), (last[:, None] + 1 + steps).reshape(-1)])
        needed = int(positions.max()) + 1
    if needed > model.rope_cos.shape[0]:
        model._extend_rope(2 * needed)
    layout = _Layout(prompt_lens, prompt_of, completion_lens.clamp(1, Tc), Tp, Tc, rows_per_bucket)
    ids = torch.cat([prompt_ids.reshape(-1), completion_ids.reshape(-1)])[layout.real]
    x = model.model.embed_tokens(ids)[None]  # [1,R,C]: R real tokens
    positions = positions[layout.real]
    cos, sin = model.rope_tables(positions[None], x.dtype)  # [1,R,G+2,1,D]
    H, KV = model.num_heads, model.kv_heads
    biases = [bias.to(x.dtype) for bias in layout.biases]
    if keep is None:
        keep = steps[None, :] < completion_lens[:, None]
    kept = layout.predicting[keep].unique()  # stream rows whose final states are read, sorted
    last = len(model.model.layers) - 1
    for index, (layer, weights) in enumerate(zip(model.model.layers, model.fused_weights())):
        qkv = model.rotated_qkv(layer, weights, x, cos, sin)[0]  # [R,H+2KV,D]
        heads = qkv.shape[1:]
        # Every padded layout from one gather, cut apart by one split (its backward is one cat,
        # where a slice per layout would each add a zero-filled copy of the whole gradient).
        prompt, *parts = qkv.index_select(0, layout.gather).split(layout.sizes)
        q_p, k_p, v_p = prompt.view(P, Tp, *heads).transpose(1, 2).split((H, KV, KV), dim=1)
        outputs = [model.attend(q_p, k_p, v_p, None, True).transpose(1, 2).reshape(P * Tp, -1)]
        for part, (rows, width), bias in zip(parts, layout.buckets, biases):
            n, t = bias.shape[0], bias.shape[-2]
            part = part.view(n, t, *heads).transpose(1, 2)
            q_c, k_c, v_c = part.split((H, KV, KV), dim=1)
            of = prompt_of[rows]
            keys = torch.cat([k_p[:, :, :width].index_select(0, of), k_c], dim=2)
            values = torch.cat([v_p[:, :, :width].index_select(0, of), v_c], dim=2)
            outputs.append(_masked_attention(q_c, keys, values, bias).transpose(1, 2).reshape(n * t, -1))
        rows = layout.outputs if index < last else layout.outputs[kept]
        o = torch.cat(outputs).index_select(0, rows)  # [R, H*D] (the kept rows at the last layer)
        x = model.finish_layer(layer, weights, x if index < last else x[:, kept], o[None])
    hidden = model.model.norm(x[0])  # [len(kept),C]
    # The state predicting completion token t: the prompt's last token for t = 0, token t-1 after.
    local = torch.zeros(layout.outputs.shape[0], dtype=torch.long, device=device)
    local[kept] = torch.arange(len(kept), device=device)
    predicting = hidden.index_select(0, local[layout.predicting.reshape(-1)]).view(N, Tc, -1)
    return (linear(predicting, model.lm_head.weight) if with_logits else None), predicting


def _masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v for q [N,H,T,D], k and v [N,KV,S,D], bias [N,1,1,T,S].

    At a few dozen keys, two batched matmuls train about 30% faster than SDPA's masked kernel
    (forward + backward); the G = H / KV query heads of a KV head share its keys without copies.
    """
    N, H, T, D = q.shape
    KV, S = k.shape[1], k.shape[2]
    scores = torch.matmul(q.reshape(N, KV, (H // KV) * T, D), k.transpose(-1, -2))  # [N,KV,G*T,S]
    weights = torch.softmax(scores.view(N, KV, H // KV, T, S) * D ** -0.5 + bias, dim=-1)
    return torch.matmul(weights.view(N, KV, (H // KV) * T, S), v).view(N, H, T, D)


def long_completions(prompt_lens: torch.Tensor, completion_lens: torch.Tensor) -> bool:
    """Whether completions dwarf their prompts (agent transcripts: a 40-token task, 300 tokens of turns).

    Sharing a prompt then saves little, while `completion_forward`'s attention over the padded
    [N, Tc, Tp + Tc] layout costs a lot; `bucketed_forward` is faster there (measured: about 2x on
    64 shell transcripts)."""
    return int(completion_lens.max()) > 4 * int(prompt_lens.max())


def bucketed_forward(model: LeanLlama, prompt_ids: torch.Tensor, prompt_lens: torch.Tensor,
                     completion_ids: torch.Tensor, prompt_of: torch.Tensor, completion_lens: torch.Tensor,
                     rows_per_bucket: int = 16,
                     positions: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """`completion_forward`'s (logits [N,Tc,V], hidden [N,Tc,C]) by plain forwards over prompt +
    completion rows, the rows sorted by length and run `rows_per_bucket` at a time.

    Each bucket is padded only to its own longest row, so a batch of very uneven transcripts does
    not pad every row to the longest; rows are right-padded, which lets attention use SDPA's causal
    kernel without a mask (`LeanLlama._mask`). Values equal `completion_forward`'s to fp32 rounding.
    `positions` (a policy's position rule: (ids, mask) -> position ids) replaces the default positions.
    """
    N, Tc = completion_ids.shape
    row_prompts = prompt_lens[prompt_of]
    totals = row_prompts + completion_lens
    order = torch.argsort(totals, descending=True)
    pad = int(model.config.pad_token_id if model.config.pad_token_id is not None else 0)
    parts_logits, parts_hidden = [], []
    for rows in order.split(rows_per_bucket):
        width = int(totals[rows].max())
        steps = torch.arange(width)
        n_prompt = row_prompts[rows][:, None]
        # Row r: its prompt's tokens at 0..Tp_r-1, its completion's from Tp_r on, padding after.
        prompt_steps = steps.clamp_max(prompt_ids.shape[1] - 1).expand(len(rows), -1)
        from_prompt = prompt_ids[prompt_of[rows]].gather(1, prompt_steps)
        from_completion = completion_ids[rows].gather(1, (steps - n_prompt).clamp(0, Tc - 1))
        ids = torch.where(steps < n_prompt, from_prompt, from_completion)
        real = steps < totals[rows][:, None]
        ids = ids.masked_fill(~real, pad)
        position_ids = None if positions is None else positions(ids, real.long())
        logits, hidden = model(ids, position_ids=position_ids, attention_mask=real.long(), return_hidden=True)
        # The state predicting completion token t sits at prompt_len - 1 + t.
        at = (n_prompt - 1 + torch.arange(Tc)).clamp_max(width - 1)
        parts_logits.append(logits.gather(1, at[:, :, None].expand(-1, -1, logits.shape[-1])))
        parts_hidden.append(hidden.gather(1, at[:, :, None].expand(-1, -1, hidden.shape[-1])))
    inverse = torch.argsort(order)
    return torch.cat(parts_logits)[inverse], torch.cat(parts_hidden)[inverse]
