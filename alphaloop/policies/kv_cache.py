"""`LeanLlama` inference over a KV cache: the prompt prefill and the one-token decoding steps.

Generation dominates RL time, and at ~1M parameters a decoding step is a few dozen products of
a [batch, 128] activation with small matrices: its time is the products, the memory traffic of
the cache, and a per-op cost of a few microseconds for everything else. So this path is written
for few, cheap ops, with the weights rearranged once per rollout (`InferenceWeights.of`) rather
than at every step:

* RMSNorm's gain folds into the next matrix: W (w ⊙ x r) = (W diag(w)) (x r), so a norm is a
  row norm and one multiply (r = 1 / sqrt(mean(x²) + eps), Zhang & Sennrich 2019).
* q/k/v are one product; the residual stream is one buffer that each product adds into in place
  (x += o W_o^T), and each weight is laid out once for the kernel that multiplies it
  (`matmul.prepare`). Gate and up stay two products, so SiLU(gate) ⊙ up (the SwiGLU MLP,
  Shazeer 2020) runs in place on contiguous tensors. In place matters beyond the op count:
  writing a fresh buffer first fetches it into cache (measured: an out-of-place SiLU in the
  prefill cost 4x the in-place one).
* RoPE (Su et al. 2021) is one in-place complex multiply on queries and keys at once: with each
  head's features reordered from halves to pairs (x_j, x_{j+D/2}) in the snapshot's W_q and W_k,
  q_t cos(tθ) + rotate_half(q_t) sin(tθ) is (x_j + i x_{j+D/2}) e^{i t θ_j}; q·k is unchanged
  because queries and keys are reordered alike.
* Attention is two batched products over a window of the cache, q K^T (+ an additive bias for
  padding, causality and unwritten slots, in the same call) and softmax(.) V, grouped by KV head
  so grouped-query attention needs no repeated keys (Ainslie et al. 2023). The window is the
  filled length rounded up to a multiple of 16: batched products of tiny matrices are several
  times slower below 16 columns (measured on MKL: 12 positions cost 2-3x what 16 do), and the
  slots past the sequence are masked (-inf bias) and hold zeros, never garbage.

Keys and values are cached together, `kv[L, 2, B, KV, capacity, D]` (keys in the pair order
above): a new slot's keys and values are one contiguous write, next to each other in the q/k/v
product (a transposed key cache reads faster in q K^T but costs more to write one column at a
time; measured in place, this layout wins). Slots are zeroed lazily,
just before a window first covers them: a fresh cache is not filled with zeros it may never use.
This path is inference only (no gradients flow through the snapshot); the maths is the model's,
and logits equal `LeanLlama.forward` and HF's Llama to fp32 rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from alphaloop.policies.matmul import Prepared, prepare, product

MIN_WINDOW = 16  # attend over at least this many cached positions


class LayerInferenceWeights(NamedTuple):
    """One layer's matrices as the cached path multiplies them (biases may be None)."""

    qkv: Prepared  # W_qkv diag(w_n1): q, k, v stacked, the first norm's gain folded in
    qkv_bias: torch.Tensor | None
    o: Prepared
    o_bias: torch.Tensor | None
    gate: Prepared  # W_gate diag(w_n2)
    gate_bias: torch.Tensor | None
    up: Prepared  # W_up diag(w_n2)
    up_bias: torch.Tensor | None
    down: Prepared
    down_bias: torch.Tensor | None


class InferenceWeights(NamedTuple):
    """Every layer's `LayerInferenceWeights`, the embedding, the LM head with the final norm folded
    in, and the rotary table as complex numbers e^{i t θ_j} [positions, D/2]."""

    layers: list[LayerInferenceWeights]
    embed: torch.Tensor  # [V, C]
    head: Prepared  # W_head diag(w_norm)
    norm: torch.Tensor  # the final norm's gain, for hidden states
    rotary: torch.Tensor
    eps: float

    @classmethod
    @torch.no_grad()
    def of(cls, model) -> InferenceWeights:
        """`model`'s (a LeanLlama) weights rearranged for the cached path: a snapshot, stale after
        the next optimizer step."""
        layers = []
        H, KV, D = model.num_heads, model.kv_heads, model.head_dim
        # Query/key features reordered within each head from halves [x_0..x_{D/2-1}, x_{D/2}..] to
        # pairs [x_0, x_{D/2}, x_1, x_{D/2+1}, ...]: rotate-half RoPE then acts on adjacent pairs,
        # i.e. is one complex multiply, and q·k is unchanged (both sides permuted alike).
        pairs = torch.arange(D).view(2, D // 2).t().reshape(-1)
        rows = torch.cat([head * D + pairs for head in range(H + KV)] + [torch.arange((H + KV) * D, (H + 2 * KV) * D)])
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            n1, n2 = layer.input_layernorm.weight, layer.post_attention_layernorm.weight
            qkv = (a.q_proj, a.k_proj, a.v_proj)
            layers.append(LayerInferenceWeights(
                prepare((torch.cat([p.weight for p in qkv]) * n1)[rows]),
                None if a.q_proj.bias is None else torch.cat([p.bias for p in qkv])[rows],
                prepare(a.o_proj.weight), a.o_proj.bias,
                prepare(m.gate_proj.weight * n2), m.gate_proj.bias,
                prepare(m.up_proj.weight * n2), m.up_proj.bias,
                prepare(m.down_proj.weight), m.down_proj.bias))
        norm = model.model.norm.weight.detach()
        half = D // 2  # rope_sin holds [-sin, sin] halves (see LeanLlama._extend_rope)
        rotary = torch.complex(model.rope_cos[:, :half], model.rope_sin[:, half:])
        return cls(layers, model.model.embed_tokens.weight.detach(), prepare(model.lm_head.weight * norm), norm,
                   rotary, float(model.model.norm.eps))


class KVCache:
    """Keys and values of every layer for `batch` sequences of up to `max_len` positions.

    `kv[layer, 0]` holds keys and `kv[layer, 1]` values, [B, KV, capacity, D] each; `capacity`
    is `max_len`, but at least MIN_WINDOW. `length` counts the positions filled
    so far (the same for every row: left padding keeps the batch rectangular). `bias[b, kv, 0, s]`
    is the additive attention mask of key slot s: 0 at real tokens, -inf at padding and at slots
    not yet written (one copy per KV head, so that [B*KV, 1, W] is a view, as torch.baddbmm
    wants it). Slots below `zeroed` hold written keys/values or zeros. `weights` is the snapshot
    the cached forward multiplies by (`InferenceWeights`); it must not outlive an optimizer step.
    `select(rows)` drops (or repeats) rows.
    """

    def __init__(self, num_layers: int, batch: int, kv_heads: int, max_len: int, head_dim: int,
                 weights: InferenceWeights, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> None:
        capacity = max(max_len, MIN_WINDOW)
        self.kv = torch.empty(num_layers, 2, batch, kv_heads, capacity, head_dim, dtype=dtype, device=device)
        self._index_layers()
        self.bias = torch.full((batch, kv_heads, 1, capacity), float("-inf"), dtype=dtype, device=device)
        self.max_len, self.capacity = max_len, capacity
        self.length = self.zeroed = 0
        self.weights = weights

    @property
    def batch(self) -> int:
        return self.bias.shape[0]

    def mark(self, start: int, attention_mask: torch.Tensor) -> None:
        """Record which of slots start.. hold real tokens (mask 1) and which padding (0)."""
        bias = torch.zeros(attention_mask.shape, dtype=self.bias.dtype, device=self.bias.device)
        bias.masked_fill_(~attention_mask.bool(), float("-inf"))
        self.bias[..., start:start + bias.shape[1]] = bias[:, None, None]

    def _index_layers(self) -> None:
        """Per layer: (kv [2, B, KV, capacity, D], keys and values as [B*KV, capacity, D]), so
        that a step slices views made once rather than rebuilding them every time."""
        L, _, B, KV, capacity, D = self.kv.shape
        self.layers = [(kv, kv[0].view(B * KV, capacity, D), kv[1].view(B * KV, capacity, D)) for kv in self.kv]

    def prepare_window(self, filled: int) -> int:
        """The window of slots a forward over the first `filled` slots attends to, after zeroing
        the slots of it that neither hold a key yet nor will be written by that forward."""
        window = min(max(filled, MIN_WINDOW), self.capacity)
        fresh = max(self.zeroed, filled)
        if window > fresh:
            self.kv[..., fresh:window, :].zero_()
        self.zeroed = max(self.zeroed, window)
        return window

    def select(self, rows: torch.Tensor) -> None:
        """Keep the sequences `rows` (indices into the current batch, in that order, repeats allowed).

        Finished rows need no more compute: dropping them shrinks every later decoding step to
        the rows still generating. Repeating a row starts several samples from one prefilled prompt.
        """
        self.kv = self.kv.index_select(2, rows)
        self._index_layers()
        self.bias = self.bias.index_select(0, rows)


def _normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x²) + eps) per row: RMSNorm without its gain (folded into the next product)."""
    # (F.rms_norm computes the same with more internal ops: measured slower at these sizes)
    ms = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().mul_(1.0 / x.shape[-1])
    return x * ms.add_(eps).rsqrt_()


def _attention_bias(cache: KVCache, start: int, T: int, window: int, groups: int,
                    attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The additive mask of T queries at slots start.. over the window: [B*KV, G*T or 1, window].

    One new real token per row (decoding) is a view of the cache's key bias. Otherwise the key
    bias is combined with causality, and each query may always attend to itself, so a padding
    query (left padding) never sees an all-masked row, whose softmax would be NaN and would
    poison later layers through 0 * NaN; real queries never see padding keys.
    """
    B, KV = cache.bias.shape[:2]
    if T == 1 and attention_mask is None:
        return cache.bias[..., :window].reshape(B * KV, 1, window)
    keys = torch.arange(window, device=cache.bias.device)
    queries = torch.arange(start, start + T, device=cache.bias.device)[:, None]
    bias = cache.bias[:, 0, 0, :window][:, None, :].masked_fill(keys > queries, float("-inf"))  # [B,T,W]
    bias = bias.masked_fill(keys == queries, 0.0)
    return bias[:, None, None].expand(B, KV, groups, T, window).reshape(B * KV, groups * T, window)


def cached_forward(model, cache: KVCache, input_ids: torch.Tensor, position_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None, return_hidden: bool = False,
                   logits_to_keep: int = 0) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Logits [B, T, V] (and the final normed hidden states if `return_hidden`) of `input_ids`
    [B, T] at RoPE positions `position_ids` [B, T], continuing the sequences in `cache` and
    appending their keys and values at slots `cache.length`..: the prompt prefill (T > 1,
    `attention_mask` marking left padding) and each decoding step (T = 1).

    `logits_to_keep` = n > 0 returns only the last n positions (as HF's argument of that name).
    A prefill needs just the last position's logits, and then the last layer only needs its
    keys and values at the other positions: its attention and MLP run for the kept ones alone.
    """
    B, T = input_ids.shape
    H, KV, D = model.num_heads, model.kv_heads, model.head_dim
    G = H // KV
    start, weights = cache.length, cache.weights
    S = start + T
    keep = T if logits_to_keep <= 0 else min(logits_to_keep, T)
    if attention_mask is not None or T > 1:
        cache.mark(start, attention_mask if attention_mask is not None else torch.ones_like(input_ids))
    else:
        cache.bias[..., start] = 0.0
    W = cache.prepare_window(S)
    bias = _attention_bias(cache, start, T, W, G, attention_mask)
    rotary = weights.rotary[position_ids][:, :, None]  # [B, T, 1, D/2]
    x = F.embedding(input_ids.reshape(-1), weights.embed)  # [B*T, C]
    last = len(weights.layers) - 1
    for index, w in enumerate(weights.layers):
        qkv = product(_normalize(x, weights.eps), w.qkv, w.qkv_bias).view(B, T, H + 2 * KV, D)
        qk = qkv[:, :, : H + KV]
        torch.view_as_complex(qk.unflatten(-1, (D // 2, 2))).mul_(rotary)  # RoPE, in place
        kv, keys, values = cache.layers[index]
        kv[:, :, :, start:S] = qkv[:, :, H:].view(B, T, 2, KV, D).permute(2, 0, 3, 1, 4)
        if index == last and keep < T:  # only the kept positions' outputs are needed from here on
            qk, bias = qk[:, T - keep:], bias.view(B * KV, G, T, W)[:, :, T - keep:].reshape(B * KV, G * keep, W)
            x, T = x.view(B, T, -1)[:, T - keep:].reshape(B * keep, -1), keep
        q = qk[:, :, :H].reshape(B, T, KV, G, D).permute(0, 2, 3, 1, 4).reshape(B * KV, G * T, D)
        scores = torch.baddbmm(bias, q, keys[:, :W].transpose(1, 2), alpha=D ** -0.5)
        attended = torch.bmm(torch.softmax(scores, dim=-1), values[:, :W])
        attended = attended.view(B, KV, G, T, D).permute(0, 3, 1, 2, 4).reshape(B * T, H * D)
        x = product(attended, w.o, w.o_bias, residual=x)
        normed = _normalize(x, weights.eps)
        gate = F.silu(product(normed, w.gate, w.gate_bias), inplace=True)
        x = product(gate.mul_(product(normed, w.up, w.up_bias)), w.down, w.down_bias, residual=x)
    cache.length = S
    normed = _normalize(x, weights.eps)
    logits = product(normed, weights.head).view(B, T, -1)
    return (logits, (normed * weights.norm).view(B, T, -1)) if return_hidden else logits
