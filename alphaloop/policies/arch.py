"""The size of a freshly built Llama-architecture policy: the recipe's `[policy.arch]`.

Kept apart from `lm.py` so a recipe can be read and checked without importing `transformers`
(board-game runs never need it); `llama_config` imports it only when a model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from transformers import LlamaConfig


MAX_PARAMETERS = 10**9   # fp32 weights, gradients and AdamW state: 16 GB at this size
# NoPE as a config plain `transformers` runs: RoPE with linear position scaling divides every angle
# t·θ_i by this factor, so at any position below 10^6 cos = 1 and |sin| < 10^-23 in fp32 -- each
# rotation is the identity to fp32 rounding, and the model sees no position at all.
NOPE_ROPE_FACTOR = 1e30


class LMArch(BaseModel):
    """Size of a freshly built Llama-architecture policy (defaults: ~0.85M parameters)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(128, ge=8, le=65536, description="width of the residual stream")
    num_layers: int = Field(4, ge=1, le=1024, description="decoder layers")
    num_heads: int = Field(4, ge=1, le=1024, description="query heads; hidden_size must be a multiple")
    num_kv_heads: int = Field(4, ge=1, le=1024, description="key/value heads (GQA); must divide num_heads")
    intermediate_size: int = Field(384, ge=1, le=262144, description="SwiGLU MLP width")
    max_seq_len: int = Field(128, ge=8, le=1048576, description="longest prompt + completion, in tokens")
    rope_theta: float = Field(10000.0, gt=0, description="RoPE base frequency")
    tie_embeddings: bool = Field(True, description="share the input embedding and the output projection")
    position_encoding: Literal["rope", "none"] = Field(
        "rope", description="'rope' (rotary, Su et al. 2021) or 'none' (NoPE, Kazemnejad et al. 2023: the causal "
                            "mask alone tells the model where it is)")

    @model_validator(mode="after")
    def _shapes_divide(self) -> LMArch:
        # Checked when the recipe loads, not when the model is built after earlier stages have trained.
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})")
        if self.approx_parameters() > MAX_PARAMETERS:
            raise ValueError(f"about {self.approx_parameters():.2g} parameters: more than {MAX_PARAMETERS:.0e}, the "
                             "largest model built from [policy.arch] (start from a pretrained model instead)")
        if (self.hidden_size // self.num_heads) % 2:
            raise ValueError(f"hidden_size / num_heads = {self.hidden_size // self.num_heads} (the head dimension) "
                             "must be even: RoPE rotates pairs of features")
        return self

    def approx_parameters(self) -> int:
        """Decoder parameters (attention + SwiGLU MLP per layer), without the small embedding."""
        kv = self.hidden_size // self.num_heads * self.num_kv_heads
        attention = self.hidden_size * (2 * self.hidden_size + 2 * kv)
        return self.num_layers * (attention + 3 * self.hidden_size * self.intermediate_size)

    def llama_config(self, vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> LlamaConfig:
        from transformers import LlamaConfig

        config = LlamaConfig(
            vocab_size=vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, max_position_embeddings=self.max_seq_len,
            rope_theta=self.rope_theta, tie_word_embeddings=self.tie_embeddings, rms_norm_eps=1e-6,
            bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id,
        )
        if self.position_encoding == "none":  # NoPE, written as RoPE whose every rotation is the identity
            config.rope_parameters = {"rope_type": "linear", "factor": NOPE_ROPE_FACTOR, "rope_theta": self.rope_theta}
        config.architectures = ["LlamaForCausalLM"]
        return config
