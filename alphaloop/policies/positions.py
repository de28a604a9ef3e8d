"""Position rules: which RoPE position id each token of a sequence gets, when it is not its index.

By default token t of a sequence sits at position t (counting real tokens only, so left padding
does not shift anything). A *position rule* replaces that with ids read off the tokens themselves.
It is part of the policy: its name is saved in `config.json` under `alphaloop_positions`, so every
later load (training, `alphaloop eval`, the server) runs the model with the ids it was trained with.

Position coupling (Cho et al. 2024, "Position coupling: improving length generalization of
arithmetic transformers using task structure"), rule `"coupled"`, for sums written as
`047+085=` -> `231` (operands zero-padded to one width, a zero column on top for the carry out; the
answer least significant digit first, as wide as an operand: `envs.arithmetic`,
`answer_format = "reversed"`):

    before the first '=':   digit of significance j in its run of digits   -> j + 1
                            (units 1, tens 2, ...), any other token (BOS, '+') -> 0
    the first '=':                                                           -> 1
    token k after it (k = 0, 1, ...):                                        -> k + 2

    tokens     <bos>  0  4  7  +  0  8  5  =  2  3  1  <eos>
    ids          0    3  2  1  0  3  2  1  1  2  3  4    5

Next-token prediction decides the offset: answer digit j (significance j) is *predicted at* the
token before it -- '=' for j = 0, answer digit j-1 after that -- whose id is j + 1, the id of the
two operand digits it must add; <eos> is predicted by the first token whose id no operand digit has.
RoPE's attention score depends on positions only through their
difference (q_m . k_n = Re[sum_i q_i conj(k_i) e^{i (m-n) theta_i}], Su et al. 2021), so the
digits a step reads sit at relative distance 0 (this column) and 1 (the column below, for the
carry) whatever the operands' length: a 4-digit sum asks for the same lookups as a 3-digit one.
Offsets. With absolute position embeddings Cho et al. add a random offset to the coupled ids during
training so that the larger ids of long operands are trained too. RoPE is shift-invariant, yet an
offset still matters here, because BOS and '+' sit at a fixed id 0: the distance from a query to
them is its column + 1, an absolute column index, which a model trained on 1-3 digits uses
(measured: shifting a trained policy's coupled ids by 1 or 2 against BOS and '+' drops its test
accuracy from 98% to 86-94%, and on 4-digit sums from 83% to 54-63%; docs/generalisation.md).
With `offsets = K` every
coupled id of a sequence (not BOS's or '+''s) is shifted by o in 0..K, a stable hash of its prompt's
tokens, so the distance to BOS no longer says which column a query is in (the distance to the units
column still does: that one is the coupling itself). A hash rather than a
random draw: the sampler, the training forward and every later evaluation give a sequence the same
ids, so log-prob ratios of RL are exact and evaluations reproducible.

The rule is computed from the tokens (no prompt length is needed), so every forward that sees a
whole sequence -- a training forward over prompt + completion rows, a prefill -- gets the same
ids, and decoding continues them one by one (+1 per token) as it does by default. Each sequence
must contain the separator '=' in its prompt: before it, a digit's id depends on the digits that
follow it in its run, which a decoder has not seen yet. Rows without one raise ValueError.

A policy with a rule loads in plain `transformers` (`AutoModelForCausalLM.from_pretrained`) -- the
extra config field is ignored -- but `generate()` there gives default positions 0, 1, 2, ...
and so wrong outputs; pass `position_ids=coupled_positions(...)` to a forward to reproduce ours.
"""

from __future__ import annotations

import torch

CONFIG_KEY = "alphaloop_positions"  # the rule's name in a saved policy's config.json
OFFSETS_KEY = "alphaloop_position_offsets"  # the largest per-sequence offset of the coupled ids (absent: 0)
RULES = ("coupled",)
DIGITS, SEPARATOR = "0123456789", "="


def default_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position t for the t-th real token of each row (0 at padding): [B,T] -> [B,T]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)


def random_positions(attention_mask: torch.Tensor, span: int, generator: torch.Generator | None = None,
                     ) -> torch.Tensor:
    """Randomised position ids (Ruoss et al. 2023, "Randomized positional encodings boost length
    generalization of transformers"): each row's real tokens get a uniformly drawn *ordered* subset of
    0..span-1 instead of 0..n-1, padding 0: [B,T] -> [B,T].

    A training-time augmentation: the model sees position ids (and, under RoPE, distances between
    tokens) up to `span`, far beyond what its training sequences reach, so the larger ids and distances
    of longer test sequences are in distribution. Inference keeps the default ids 0..n-1 -- an ordered
    subset like any other -- so the trained policy stays a plain Llama that `transformers` runs as is.
    """
    real = attention_mask.bool()
    rows, width = real.shape
    longest = int(real.sum(-1).max()) if rows else 0
    if longest > span:
        raise ValueError(f"a row has {longest} tokens, more than the span of {span} ids to draw "
                         f"them from; raise the span")
    # First `width` entries of a random permutation of 0..span-1 per row; of those, a row with n tokens keeps
    # its first n (a uniform n-subset), sorted.
    draws = torch.rand(rows, span, generator=generator).argsort(-1)[:, :width].to(attention_mask.device)
    rank = default_positions(attention_mask)  # k at the row's k-th real token
    kept = torch.where(torch.arange(width, device=draws.device) < real.sum(-1, keepdim=True), draws, span)
    ordered = kept.sort(-1).values
    return torch.where(real, ordered.gather(1, rank.clamp_max(width - 1)), 0)


def coupled_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, digit_ids: torch.Tensor,
                      separator_id: int, offsets: int = 0) -> torch.Tensor:
    """The coupled ids (module docstring) of `input_ids` [B,T], padding (mask 0) at 0, each row's coupled
    ids shifted by its prompt's offset in 0..`offsets`: [B,T]."""
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    separators = ((input_ids == separator_id) & real).long().cumsum(-1)  # separators at or before t
    missing = (separators[:, -1] == 0).nonzero()
    if len(missing):
        raise ValueError(f"position rule 'coupled': row {int(missing[0])} has no {SEPARATOR!r}; every prompt of a "
                         f"coupled policy must contain it (e.g. '047+085=')")
    answer = (separators > 0) & real  # the first separator and every real token after it
    counter = answer.long().cumsum(-1)  # 1 at the first separator, k + 2 at the k-th token after it
    digit = torch.isin(input_ids, digit_ids.to(input_ids.device)) & real & ~answer
    # A digit's place in its run, counted from the run's right end: scanning the row backwards, the
    # distance to the last non-digit seen (cummax of the non-digits' indices) is 1 for units, 2 for tens...
    steps = torch.arange(input_ids.shape[1], device=input_ids.device)
    backwards = digit.flip(-1)
    last_break = torch.where(backwards, -1, steps).cummax(-1).values
    place = (steps - last_break).flip(-1)
    coupled = torch.where(digit, place, torch.where(answer, counter, 0))
    if offsets:
        coupled = torch.where(coupled > 0, coupled + prompt_offsets(input_ids, real & ~answer, offsets)[:, None], 0)
    return coupled


def prompt_offsets(input_ids: torch.Tensor, prompt: torch.Tensor, offsets: int) -> torch.Tensor:
    """Per row, a stable hash of its prompt tokens (`prompt` marks them) in 0..offsets: [B].

    Each token contributes (id + 1)(t + 1) times an odd 32-bit constant (Knuth's multiplicative hash),
    t its place among the prompt's tokens (so padding on either side changes nothing); the sum mod
    offsets + 1 is close to uniform over problems. int64 holds the products for ids and lengths < 10^4.
    """
    place = prompt.long().cumsum(-1)  # t + 1 at prompt tokens
    mixed = (input_ids + 1) * place * 2654435761 % 2**31
    return (mixed * prompt).sum(-1) % (offsets + 1)


class CoupledPositions:
    """The `"coupled"` rule bound to a tokenizer's ids of the ten digits and of '='."""

    name = "coupled"

    def __init__(self, tokenizer, offsets: int = 0) -> None:
        self.offsets = int(offsets)
        ids = []
        for char in DIGITS + SEPARATOR:
            encoded = tokenizer.encode(char, add_special_tokens=False)
            if len(encoded) != 1 or encoded[0] == tokenizer.unk_token_id:
                raise ValueError(f"position rule 'coupled': the tokenizer must give {char!r} one token of its own "
                                 f"(got {encoded}); it suits character tokenizers over digits")
            ids.append(encoded[0])
        self.digit_ids = torch.tensor(ids[:-1], dtype=torch.long)
        self.separator_id = ids[-1]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return coupled_positions(input_ids, attention_mask, self.digit_ids, self.separator_id, self.offsets)


def position_rule(config, tokenizer) -> CoupledPositions | None:
    """The rule a model config names (`config.alphaloop_positions`, with `alphaloop_position_offsets`),
    bound to `tokenizer`; None by default."""
    name = getattr(config, CONFIG_KEY, None)
    if name is None:
        return None
    if name not in RULES:
        raise ValueError(f"config.json: {CONFIG_KEY}={name!r} is not a known position rule (known: {', '.join(RULES)})")
    return CoupledPositions(tokenizer, offsets=int(getattr(config, OFFSETS_KEY, 0) or 0))
