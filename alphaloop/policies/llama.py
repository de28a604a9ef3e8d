"""A lean Llama: the same maths and state-dict names as HF `LlamaForCausalLM`, less Python.

At ~1M parameters a forward pass is a few dozen tiny matmuls, so wall time is set by Python
overhead, not FLOPs: HF's model builds 4-D masks through a generic masking module, wraps
every layer in hooks and output dataclasses, and keeps its KV cache in per-layer objects. This
file does the same computation as one flat loop over functional ops, and keeps HF's parameter
names (`model.layers.0.self_attn.q_proj.weight`, ...), so weights saved from here load with
`AutoModelForCausalLM.from_pretrained` and give the same logits. Its matmuls go through
`matmul.linear` (the faster of MKL and oneDNN on this CPU). With a `kv_cache` (`new_cache`) the
forward is the inference path in `kv_cache.py` (prompt prefill and one-token decoding steps into a
preallocated cache); `prefix.py` adds a training forward that computes each prompt once for all
of its sampled completions.

The architecture (Touvron et al. 2023, "LLaMA"), per layer l with input x:

    h  = x + W_o · Attn(RoPE(W_q · n1(x)), RoPE(W_k · n1(x)), W_v · n1(x))
    x' = h + W_down · (SiLU(W_gate · n2(h)) ⊙ W_up · n2(h))

with RMSNorm n(x) = w ⊙ x / sqrt(mean(x²) + eps) (Zhang & Sennrich 2019), rotary position
embeddings RoPE(q)_t = q_t cos(t θ) + rotate_half(q_t) sin(t θ), θ_i = base^(-2i/d) (Su et al.
2021; 'linear' scaling divides θ by a factor, and a factor of 1e30 makes every rotation the identity,
i.e. no positional encoding, NoPE), grouped-query attention (Ainslie et al. 2023: n_kv_heads key/value heads shared by
n_heads / n_kv_heads query heads each) and a SwiGLU MLP (Shazeer 2020).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # a type only: the sampler imports this module, and board-game runs never need transformers
    from transformers import LlamaConfig

from alphaloop.policies.fused import rms_norm, swiglu
from alphaloop.policies.kv_cache import InferenceWeights, KVCache, cached_forward
from alphaloop.policies.matmul import linear

# Per layer: (W_qkv, b_qkv, W_o, b_o, W_gate_up, b_gate_up, W_down, b_down); biases may be None.
LayerWeights = tuple[torch.Tensor | None, ...]


def lean_supported(config) -> str | None:
    """None if `config` is a Llama this module reproduces exactly, else the reason it is not."""
    if getattr(config, "model_type", None) != "llama":
        return f"model_type {getattr(config, 'model_type', None)!r} is not 'llama'"
    rope = getattr(config, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") not in ("default", "linear"):
        return f"rope_type {rope.get('rope_type')!r} (only 'default' and 'linear' RoPE are implemented)"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"hidden_act {config.hidden_act!r} (only 'silu' is implemented)"
    if getattr(config, "pretraining_tp", 1) not in (1, None):
        return "pretraining_tp != 1"
    return None


def _rope_theta(config) -> float:
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def _rope_scale(config) -> float:
    """The factor 'linear' RoPE divides every angle by (Chen et al. 2023, position interpolation: position
    t is rotated as t / factor); 1 for 'default'. A huge factor is NoPE (`arch.NOPE_ROPE_FACTOR`)."""
    rope = getattr(config, "rope_parameters", None) or {}
    return float(rope.get("factor", 1.0)) if rope.get("rope_type") == "linear" else 1.0


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class _Attention(nn.Module):
    def __init__(self, c: LlamaConfig, head_dim: int) -> None:
        super().__init__()
        bias = bool(getattr(c, "attention_bias", False))
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * head_dim, bias=bias)
        self.o_proj = nn.Linear(c.num_attention_heads * head_dim, c.hidden_size, bias=bias)


class _MLP(nn.Module):
    def __init__(self, c: LlamaConfig) -> None:
        super().__init__()
        bias = bool(getattr(c, "mlp_bias", False))
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=bias)


class _Layer(nn.Module):
    def __init__(self, c: LlamaConfig, head_dim: int) -> None:
        super().__init__()
        self.self_attn = _Attention(c, head_dim)
        self.mlp = _MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class _Body(nn.Module):
    def __init__(self, c: LlamaConfig, head_dim: int) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(_Layer(c, head_dim) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class LeanLlama(nn.Module):
    """`LlamaForCausalLM` with HF's parameter names and a flat, cache-friendly forward."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        reason = lean_supported(config)
        if reason is not None:
            raise ValueError(f"config: LeanLlama cannot reproduce this model: {reason}")
        self.config = config
        self.num_heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        if self.num_heads % self.kv_heads:
            raise ValueError(f"config: num_attention_heads ({self.num_heads}) must be a multiple of "
                             f"num_key_value_heads ({self.kv_heads})")
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.num_heads
        self.model = _Body(config, self.head_dim)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tied = bool(config.tie_word_embeddings)
        if self.tied:
            self.lm_head.weight = self.model.embed_tokens.weight
        inv_freq = 1.0 / (_rope_theta(config) ** (torch.arange(0, self.head_dim, 2, dtype=torch.float)
                                                  / self.head_dim))
        inv_freq = inv_freq / _rope_scale(config)  # as HF's 'linear' RoPE: theta_i / factor
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self._extend_rope(max(int(getattr(config, "max_position_embeddings", 0) or 0), 256))
        self.reset_parameters(getattr(config, "initializer_range", 0.02))

    def reset_parameters(self, std: float) -> None:
        """HF's Llama init: N(0, std) for every matmul and embedding weight, zero biases, unit norms."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)

    def _extend_rope(self, length: int) -> None:
        # cos/sin tables indexed by position; products computed in float32 exactly as HF does.
        positions = torch.arange(length, dtype=torch.float, device=self.inv_freq.device)
        freqs = positions[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        # rotate_half(x) * sin == roll(x, D/2) * [-sin, sin]: same products, but no slicing, whose
        # backward allocates and fills zeros.
        sin = emb.sin()
        half = self.head_dim // 2
        self.rope_cos, self.rope_sin = emb.cos(), torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)

    def fused_weights(self) -> list[LayerWeights]:
        """Per layer (W_qkv, b_qkv, W_o, b_o, W_gate_up, b_gate_up, W_down, b_down): the q/k/v
        projections stacked into one matrix and gate/up into another, so a layer runs 4 matmuls
        instead of 7. At this size a matmul costs about as much in dispatch as in arithmetic, so
        fewer, wider ones win. Concatenation is differentiable, so training through these is exact."""
        fused = []
        for layer in self.model.layers:
            a, m = layer.self_attn, layer.mlp
            qkv, gate_up = (a.q_proj, a.k_proj, a.v_proj), (m.gate_proj, m.up_proj)
            fused.append((torch.cat([p.weight for p in qkv]),
                          None if a.q_proj.bias is None else torch.cat([p.bias for p in qkv]),
                          a.o_proj.weight, a.o_proj.bias,
                          torch.cat([p.weight for p in gate_up]),
                          None if m.gate_proj.bias is None else torch.cat([p.bias for p in gate_up]),
                          m.down_proj.weight, m.down_proj.bias))
        return fused

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty cache for `batch` rows of up to `max_len` positions (prompt + completion),
        holding a snapshot of the weights for the cached forward (inference only: make it under
        `torch.no_grad()` or `torch.inference_mode()`, and not across an optimizer step)."""
        if max_len > self.rope_cos.shape[0]:
            self._extend_rope(max_len)
        weight = self.lm_head.weight
        return KVCache(len(self.model.layers), batch, self.kv_heads, max_len, self.head_dim, InferenceWeights.of(self),
                       dtype=weight.dtype, device=weight.device)

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict as HF saves it: without `lm_head.weight` when embeddings are tied."""
        state = self.state_dict()
        if self.tied:
            state.pop("lm_head.weight", None)
        return {k: v.contiguous() for k, v in state.items()}

    def load_hf_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if self.tied:
            missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise ValueError(f"state dict does not match the Llama config: missing {missing}, "
                             f"unexpected {unexpected}")

    def _mask(self, attention_mask: torch.Tensor | None, T: int) -> tuple[torch.Tensor | None, bool]:
        """(boolean attention mask [B,1,T,T] or None, is_causal) for SDPA.

        Causality is combined with key padding. Each query may also always attend to itself, so
        padding queries (left padding) never see an all-masked row, whose softmax would be NaN
        and would poison later layers through 0 * NaN; real queries never see padding keys.
        Right padding (training batches) needs no mask at all: under causality a real token
        only ever looks left, where every token is real, so SDPA's fast causal kernel gives the
        exact result at every real position.
        """
        if attention_mask is None:
            return None, True
        valid = attention_mask.bool()
        if bool((valid[:, 1:] <= valid[:, :-1]).all()):  # right padded
            return None, True
        positions = torch.arange(T, device=valid.device)
        causal = positions[None, :] <= positions[:, None]  # [T,T]
        mask = (causal[None] & valid[:, None, :]) | torch.eye(T, dtype=torch.bool, device=valid.device)[None]
        return mask[:, None], False

    def rope_tables(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin [..., G + 2, 1, D] at `position_ids` [...] for `rotated_qkv`: the fused q/k/v
        heads seen as G + 2 groups of KV heads (G = H / KV groups of queries, then the keys, then
        the values), the values' group with cos 1 and sin 0, so one product rotates q and k and
        leaves v exactly as it is (no split before RoPE and no concatenation after it, nor their
        copies in the backward pass)."""
        cos = self.rope_cos[position_ids].to(dtype)[..., None, None, :]  # [...,1,1,D]
        sin = self.rope_sin[position_ids].to(dtype)[..., None, None, :]
        rotated = (*position_ids.shape, self.num_heads // self.kv_heads + 1, 1, self.head_dim)
        return (torch.cat([cos.expand(rotated), torch.ones_like(cos)], dim=-3),
                torch.cat([sin.expand(rotated), torch.zeros_like(sin)], dim=-3))

    def rotated_qkv(self, layer: _Layer, weights: LayerWeights, x: torch.Tensor, cos: torch.Tensor,
                    sin: torch.Tensor) -> torch.Tensor:
        """Queries, keys and values [B,T,H+2KV,D] of a layer's input x [B,T,C] (in that order along
        heads), RoPE applied to q and k: x cos + rotate_half(x) sin with rotate_half(x) = [-x2, x1]
        (`rope_tables` gives cos and sin)."""
        B, T = x.shape[:2]
        H, KV, D = self.num_heads, self.kv_heads, self.head_dim
        qkv = linear(layer.input_layernorm(x), weights[0], weights[1]).view(B, T, H // KV + 2, KV, D)
        return torch.addcmul(qkv * cos, torch.roll(qkv, D // 2, dims=-1), sin).view(B, T, H + 2 * KV, D)

    def project_qkv(self, layer: _Layer, weights: LayerWeights, x: torch.Tensor, cos: torch.Tensor,
                    sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries [B,T,H,D], keys and values [B,T,KV,D] of a layer's input x [B,T,C], RoPE applied
        (cos and sin from `rope_tables`)."""
        return self.rotated_qkv(layer, weights, x, cos, sin).split((self.num_heads, self.kv_heads, self.kv_heads),
                                                                   dim=2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               is_causal: bool) -> torch.Tensor:
        """SDPA over q [B,H,T,D] and k, v [B,KV,S,D], KV heads repeated for grouped-query attention."""
        if self.kv_heads != self.num_heads:
            k = k.repeat_interleave(self.num_heads // self.kv_heads, dim=1)
            v = v.repeat_interleave(self.num_heads // self.kv_heads, dim=1)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)

    def finish_layer(self, layer: _Layer, weights: LayerWeights, x: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The rest of a layer after attention: h = x + W_o o, then h + W_down (SiLU(W_gate n2(h)) * W_up n2(h))."""
        x = x + linear(o, weights[2], weights[3])
        gate_up = linear(layer.post_attention_layernorm(x), weights[4], weights[5])
        return x + linear(swiglu(gate_up, self.config.intermediate_size), weights[6], weights[7])

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, kv_cache: KVCache | None = None,
                return_hidden: bool = False, logits_to_keep: int = 0,
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits [B,T,V] (and the final, normed hidden states [B,T,H] if `return_hidden`); with
        `logits_to_keep` = n > 0, of the last n positions only (as HF's argument of that name).

        `attention_mask` [B,T] marks real tokens (1) and padding (0) among `input_ids`; it is
        combined with causality. With `kv_cache`, `input_ids` continue the cached sequence and
        are written into it in place (`kv_cache.cached_forward`, inference only; default positions
        then continue from the cache's length). Otherwise default positions count real tokens
        only (cumsum(mask) - 1), which is right for both right and left padding.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids: expected a [batch, time] tensor, got {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        if kv_cache is not None:
            start = kv_cache.length
            if start + T > kv_cache.max_len:
                raise ValueError(f"kv_cache: holds {kv_cache.max_len} positions, {start} used, {T} more given")
            if B != kv_cache.batch:
                raise ValueError(f"kv_cache: holds {kv_cache.batch} rows, input_ids has {B}")
            if torch.is_grad_enabled():
                raise ValueError("kv_cache: the cached forward is inference only; run it under torch.no_grad() "
                                 "or torch.inference_mode()")
            if position_ids is None:
                position_ids = torch.arange(start, start + T, device=input_ids.device).expand(B, T)
            return cached_forward(self, kv_cache, input_ids, position_ids, attention_mask, return_hidden,
                                  logits_to_keep)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_min(0) if attention_mask is not None else \
                torch.arange(T, device=input_ids.device).expand(B, T)
        needed = int(position_ids.max()) + 1
        if needed > self.rope_cos.shape[0]:
            self._extend_rope(2 * needed)
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rope_tables(position_ids, x.dtype)  # [B,T,G+2,1,D]
        mask, is_causal = self._mask(attention_mask, T)
        for layer, weights in zip(self.model.layers, self.fused_weights()):
            q, k, v = (t.transpose(1, 2) for t in self.project_qkv(layer, weights, x, cos, sin))
            o = self.attend(q, k, v, mask, is_causal)
            x = self.finish_layer(layer, weights, x, o.transpose(1, 2).reshape(B, T, -1))
        hidden = self.model.norm(x if logits_to_keep <= 0 else x[:, -logits_to_keep:])
        logits = linear(hidden, self.lm_head.weight)
        return (logits, hidden) if return_hidden else logits
