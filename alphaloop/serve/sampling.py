"""Per-row sampling: every row of one decoding batch with its own temperature, top-p, top-k and seed.

The server decodes many requests in one batch, and each request brings its own settings, so the
choice of the next token is made per row over the batch's logits [B, V] in a few tensor operations:

* temperature 0 is greedy (argmax); otherwise softmax(logits / T) restricted to
* the top k tokens (k = 0: all) and then to the nucleus: the most probable tokens whose cumulative
  probability first reaches top_p (Holtzman et al. 2020), the most probable token always kept;
* the draw is the exponential race of `policies.sampler` (argmax_i p_i / E_i, E_i ~ Exp(1)), with
  the uniforms of a seeded row drawn from that row's own generator, so a seeded request gives the
  same tokens whatever else shares its batch (up to the rounding of batched matrix products).

Log-probs are the model's raw ones, log softmax(logits) at temperature 1 before any truncation (as
`policies.sampler` returns them, and as vLLM reports them by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Choice:
    """One step's choice for the batch: the tokens [B], their raw log-probs [B] and, when asked for,
    the `k` most probable tokens per row with their raw log-probs ([B, k] each)."""

    tokens: torch.Tensor
    logprobs: torch.Tensor
    top_ids: torch.Tensor | None = None
    top_logprobs: torch.Tensor | None = None


def choose(logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, top_k: torch.Tensor,
           generators: list[torch.Generator | None], shared: torch.Generator, top_n: int = 0) -> Choice:
    """Next token per row of `logits` [B, V] under per-row `temperature`, `top_p` and `top_k` [B]
    (top_k 0 = no truncation); rows with a generator draw from it, the others from `shared`."""
    logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    tokens = logits.argmax(dim=-1)
    sampled = (temperature > 0).nonzero().squeeze(1)
    if len(sampled):
        tokens[sampled] = _draw(logits[sampled], temperature[sampled], top_p[sampled], top_k[sampled],
                                [generators[i] for i in sampled.tolist()], shared)
    choice = Choice(tokens, logp.gather(-1, tokens[:, None]).squeeze(1))
    if top_n > 0:
        choice.top_logprobs, choice.top_ids = logp.topk(min(top_n, logp.shape[-1]), dim=-1)
    return choice


def _draw(logits: torch.Tensor, temperature: torch.Tensor, top_p: torch.Tensor, top_k: torch.Tensor,
          generators: list[torch.Generator | None], shared: torch.Generator) -> torch.Tensor:
    """One token per row from softmax(logits / T) truncated to the top k and the top-p nucleus."""
    rows, vocab = logits.shape
    scaled = logits / temperature[:, None]
    truncate_k = (top_k > 0) & (top_k < vocab)
    truncate_p = top_p < 1
    if bool(truncate_k.any()) or bool(truncate_p.any()):
        values, order = scaled.sort(dim=-1, descending=True)
        rank = torch.arange(vocab, device=logits.device)[None, :]
        remove = rank >= torch.where(truncate_k, top_k, vocab)[:, None]
        if bool(truncate_p.any()):
            probs = torch.softmax(values.masked_fill(remove, float("-inf")), dim=-1)
            before = probs.cumsum(dim=-1) - probs   # probability of the more likely tokens
            remove |= truncate_p[:, None] & (before >= top_p[:, None])
        scaled = scaled.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    uniforms = torch.empty_like(probs)
    own = [i for i, g in enumerate(generators) if g is not None]
    for i in own:
        uniforms[i] = torch.rand(vocab, generator=generators[i], device=probs.device)
    if len(own) < rows:
        others = [i for i, g in enumerate(generators) if g is None]
        uniforms[others] = torch.rand((len(others), vocab), generator=shared, device=probs.device)
    return (probs / uniforms.log_().neg_()).argmax(dim=-1)
