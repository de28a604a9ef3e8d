"""The training forward pass with each prompt computed once for all of its completions.

GRPO-style batches hold G completions per prompt (Shao et al. 2024). A plain forward over
`prompt + completion` rows computes every prompt G times, although its hidden states, keys and
values are the same in every copy: causal attention means a prompt token never sees what
follows it. Here the P distinct prompts [P, Tp] and the N completions [N, Tc] run through the
layers as one stream of P*Tp + N*Tc token rows (every token-wise op, matmuls included, done
once over all rows); only attention differs:

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


def completion_forward(model: LeanLlama, prompt_ids: torch.Tensor, prompt_lens: torch.Tensor,
                       completion_ids: torch.Tensor, prompt_of: torch.Tensor,
                       completion_lens: torch.Tensor | None = None, with_logits: bool = True,
                       prompt_positions: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(logits [N,Tc,V], hidden [N,Tc,C]) where position t is the state that predicts completion
    token t: the prompt's last token for t = 0, completion token t-1 after that. `with_logits`
    False skips the LM head (logits None): a reward model reads only the hidden states.

    prompt_ids [P,Tp] right-padded distinct prompts with lengths prompt_lens [P] (>= 1);
    completion_ids [N,Tc] right-padded, with lengths completion_lens [N] (default: all Tc);
    padding positions give meaningless values (zeros), callers mask them; prompt_of [N] the
    prompt of each completion. `prompt_positions` [P,Tp] gives the prompts' RoPE position ids (a
    policy's position rule, `positions.py`); completion token t of a row then sits at its prompt's
    last id + 1 + t. Default: the prompt's token i at i, completion token t at prompt_len + t.

    Only real tokens run through the token-wise ops (every matmul, norm, RoPE and MLP): the
    stream holds the P prompts' and N completions' real tokens, and is scattered into the padded
    [rows, time] layout only around attention (as FlashAttention's varlen path "unpads" BERT
    batches). Completions of a preference pair or a GRPO group differ a lot in length; padding
    is often a third or more of the positions, and costs nothing here.
    """
    P, Tp = prompt_ids.shape
    N, Tc = completion_ids.shape
    device = prompt_ids.device
    if prompt_of.shape != (N,) or prompt_lens.shape != (P,):
        raise ValueError(f"prompt_of: expected shape ({N},) and prompt_lens ({P},), "
                         f"got {tuple(prompt_of.shape)} and {tuple(prompt_lens.shape)}")
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
    total = P * Tp + N * Tc
    real = torch.cat([(torch.arange(Tp, device=device)[None, :] < prompt_lens[:, None]).reshape(-1),
                      (steps[None, :] < (completion_lens if completion_lens is not None
                                         else torch.full((N,), Tc, device=device))[:, None]).reshape(-1)])
    real = None if bool(real.all()) else real.nonzero().squeeze(1)   # indices of the real tokens, or all
    ids = torch.cat([prompt_ids.reshape(-1), completion_ids.reshape(-1)])
    if real is not None:
        ids, positions = ids[real], positions[real]
    x = model.model.embed_tokens(ids)[None]  # [1,R,C]: R real tokens
    cos = model.rope_cos[positions].to(x.dtype)[None, :, None]  # [1,R,1,D]
    sin = model.rope_sin[positions].to(x.dtype)[None, :, None]
    # Completion query i of row n sees its prompt's real keys and its own completion keys <= i.
    prompt_keys = torch.arange(Tp, device=device)[None, :] < row_lens[:, None]  # [N,Tp]
    causal = steps[None, :] <= steps[:, None]  # [Tc,Tc]
    mask = torch.cat([prompt_keys[:, None, :].expand(N, Tc, Tp), causal[None].expand(N, Tc, Tc)], dim=2)
    bias = torch.zeros(mask.shape, dtype=x.dtype, device=device).masked_fill_(~mask, float("-inf"))[:, None, None]
    split = P * Tp

    def padded(t: torch.Tensor) -> torch.Tensor:
        """[R, ...] real-token rows -> [P*Tp + N*Tc, ...], zeros at padding."""
        return t if real is None else t.new_zeros(total, *t.shape[1:]).index_copy(0, real, t)

    def streams(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[1,R,heads,D] -> prompt [P,heads,Tp,D] and completion [N,heads,Tc,D] parts."""
        t = padded(t[0])
        return (t[:split].view(P, Tp, *t.shape[1:]).transpose(1, 2),
                t[split:].view(N, Tc, *t.shape[1:]).transpose(1, 2))

    for layer, weights in zip(model.model.layers, model.fused_weights()):
        (q_p, q_c), (k_p, k_c), (v_p, v_c) = (streams(t) for t in model.project_qkv(layer, weights, x, cos, sin))
        o_p = model.attend(q_p, k_p, v_p, None, True)  # right-padded prompts: plain causal attention
        keys = torch.cat([k_p.index_select(0, prompt_of), k_c], dim=2)
        values = torch.cat([v_p.index_select(0, prompt_of), v_c], dim=2)
        o_c = _masked_attention(q_c, keys, values, bias)
        o = torch.cat([o_p.transpose(1, 2).flatten(0, 1), o_c.transpose(1, 2).flatten(0, 1)]).flatten(1)
        x = model.finish_layer(layer, weights, x, (o if real is None else o.index_select(0, real))[None])
    hidden = padded(model.model.norm(x[0]))
    last_prompt = hidden[:split].view(P, Tp, -1)[torch.arange(P, device=device), prompt_lens - 1]
    predicting = torch.cat([last_prompt.index_select(0, prompt_of)[:, None],
                            hidden[split:].view(N, Tc, -1)[:, : Tc - 1]], dim=1)  # [N,Tc,C]
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
