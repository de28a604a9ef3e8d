"""Step-wise decoding of a batch whose rows join and leave between steps: a server's decoder.

`sampler.sample` decodes a fixed set of prompts from one prefill to the last EOS. A server receives
requests at any moment and must hand each one its tokens as they are made, so its batch changes
every few steps: rows join (their prompts prefilled, then merged into the running batch) and leave
(finished or cancelled). This class keeps the running rows' next-token logits and their KV cache;
choosing the tokens is the caller's business (each row may sample differently):

    decoder.add(prompts, budgets)     prefill new rows (identical prompts once) and append them
    decoder.logits                    [rows, V]: each row's next-token logits
    decoder.advance(tokens)           feed one token per row: one forward for the whole batch
    decoder.keep(rows)                keep only these rows, in this order

With our Llama the cache is `KVCache`'s rectangle: every row holds its tokens right-aligned at the
cache's shared length, its left padding masked by the key bias. A join rebuilds the rectangle: the
new rows' prefilled slots and the running rows' slots are copied into one fresh cache, right-aligned
again, and leading slots that are padding in every row are dropped on the way, so a row that has
left no longer widens every later step's attention window. A rebuild copies the running cache, so a
caller admits waiting rows in bursts rather than one per step. Logits equal a plain forward over each
row's own tokens (to fp32 rounding): a row never sees another row's slots, and its RoPE positions
count its own tokens only (or follow the policy's position rule, `positions.py`, from its own tokens).

Any other Hugging Face model has no such cache: each step is a plain forward over the rows' whole
left-padded contexts (quadratic in length, but exact, and still one forward for the whole batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alphaloop.policies.kv_cache import MIN_WINDOW, KVCache
from alphaloop.policies.llama import LeanLlama


class StepDecoder:
    """The running rows of a decoding batch over one model: their logits, positions and cache.

    `context` bounds every row's prompt + completion (the model's trained length); `budgets` given
    to `add` say how many more tokens each row may feed back with `advance` (its max_tokens - 1), so
    that a rebuilt cache has room for all of them and never has to grow mid-decode.
    """

    def __init__(self, policy, context: int) -> None:
        self.policy, self.model = policy, policy.model
        self.context = int(context)
        self.lean = isinstance(self.model, LeanLlama)
        self.device = next(self.model.parameters()).device
        self.logits: torch.Tensor | None = None        # [rows, V]
        self.positions = torch.zeros(0, dtype=torch.long, device=self.device)  # next RoPE position per row
        self.budgets: list[int] = []                   # tokens each row may still feed to `advance`
        self.contexts: list[list[int]] = []            # every row's tokens (the plain path's input)
        self.cache: KVCache | None = None
        self.rebuilds = 0                              # caches rebuilt (joins, growth): for measurements
        self.model.eval()  # the decoder owns the model: dropout and the like stay off
        if self.lean:
            with torch.inference_mode():
                # One snapshot of the weights for every cache of this decoder (RoPE table covering `context`).
                self.weights = self.model.new_cache(1, self.context + 1).weights

    @property
    def rows(self) -> int:
        return len(self.budgets)

    # -- rows joining -----------------------------------------------------------------
    def add(self, prompts: Sequence[Sequence[int]], budgets: Sequence[int], keep: Sequence[int] | None = None) -> None:
        """Append rows for `prompts` (token ids, BOS included), each allowed `budgets[i]` more tokens.

        `keep` (indices of running rows, in order) drops the other running rows in the same rebuild,
        which saves the copy a separate `keep` call would make."""
        if len(prompts) != len(budgets) or not prompts:
            raise ValueError(f"prompts and budgets: expected equal, non-zero lengths, got {len(prompts)} "
                             f"and {len(budgets)}")
        for i, prompt in enumerate(prompts):
            if not 0 < len(prompt) or len(prompt) + max(0, budgets[i]) > self.context:
                raise ValueError(f"prompts[{i}]: {len(prompt)} tokens + {budgets[i]} more do not fit the context "
                                 f"of {self.context} tokens")
        keep = list(range(self.rows)) if keep is None else list(keep)
        with torch.inference_mode():
            if self.lean:
                self._add_lean([list(p) for p in prompts], [max(0, b) for b in budgets], keep)
            else:
                self._add_plain([list(p) for p in prompts], [max(0, b) for b in budgets], keep)

    def _prefill(self, prompts: list[list[int]]) -> tuple[KVCache, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cache of the distinct prompts, row -> its prompt's cache row, next-token logits and next
        positions per row): a prompt asked for n times (n choices) is prefilled once."""
        unique: dict[tuple[int, ...], int] = {}
        source = torch.tensor([unique.setdefault(tuple(p), len(unique)) for p in prompts], device=self.device)
        firsts = list(unique)
        width = max(map(len, firsts))
        pad = self.policy.pad_id
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in firsts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in firsts], device=self.device)
        positions = self.policy.position_ids(ids, mask)  # the policy's position rule, if it has one
        cache = self._empty(len(firsts), width)
        logits = self.model(ids, position_ids=positions, attention_mask=mask, kv_cache=cache, logits_to_keep=1)[:, -1]
        return cache, source, logits[source], positions[source, -1] + 1

    def _add_lean(self, prompts: list[list[int]], budgets: list[int], keep: list[int]) -> None:
        fresh, source, logits, positions = self._prefill(prompts)
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        old_budgets = [self.budgets[i] for i in keep]
        parts = [(fresh, source)]
        if keep:
            parts.insert(0, (self.cache, index))
            logits = torch.cat([self.logits[index], logits])
            positions = torch.cat([self.positions[index], positions])
        self.cache = self._merge(parts, max(old_budgets + budgets))
        self.logits, self.positions, self.budgets = logits, positions, old_budgets + budgets

    def _add_plain(self, prompts: list[list[int]], budgets: list[int], keep: list[int]) -> None:
        logits = self._plain_logits(prompts)
        if keep:
            logits = torch.cat([self.logits[torch.tensor(keep, device=self.device)], logits])
        self.contexts = [self.contexts[i] for i in keep] + prompts
        self.budgets = [self.budgets[i] for i in keep] + budgets
        self.logits = logits

    # -- the cache rectangle ------------------------------------------------------------
    def _empty(self, batch: int, max_len: int) -> KVCache:
        model = self.model
        weight = model.lm_head.weight
        return KVCache(len(model.model.layers), batch, model.kv_heads, max_len, model.head_dim, self.weights,
                       dtype=weight.dtype, device=weight.device)

    @staticmethod
    def _span(cache: KVCache, rows: torch.Tensor) -> int:
        """How many trailing slots of `cache` the rows `rows` use: from the first slot holding a real
        token in any of them to the cache's length (the rest is padding shared by all)."""
        real = cache.bias[rows, 0, 0, : cache.length] == 0
        used = real.any(0).nonzero()
        return cache.length - int(used[0]) if len(used) else 0

    def _merge(self, parts: list[tuple[KVCache, torch.Tensor]], room: int) -> KVCache:
        """One cache holding the rows `index` of each (cache, index) part in order, right-aligned at a
        common length, with `room` free slots after it."""
        spans = [self._span(cache, index) for cache, index in parts]
        length = max(spans)
        rows = sum(len(index) for _, index in parts)
        merged = self._empty(0, length + room)
        kv_shape = list(parts[0][0].kv.shape)
        kv_shape[2], kv_shape[4] = rows, merged.capacity
        kv = torch.zeros(kv_shape, dtype=merged.kv.dtype, device=merged.kv.device)
        bias = torch.full((rows, kv_shape[3], 1, merged.capacity), float("-inf"), dtype=kv.dtype, device=kv.device)
        row = 0
        for (cache, index), span in zip(parts, spans):
            end = row + len(index)
            if span:
                kv[:, :, row:end, :, length - span:length] = cache.kv[:, :, index, :, cache.length - span:cache.length]
                bias[row:end, ..., length - span:length] = cache.bias[index, ..., cache.length - span:cache.length]
            row = end
        merged.kv, merged.bias = kv, bias
        merged._index_layers()  # the per-layer views of the new tensor (as `select` makes them)
        merged.length, merged.zeroed = length, merged.capacity  # zero-filled: nothing to zero lazily
        self.rebuilds += 1
        return merged

    # -- decoding -----------------------------------------------------------------------
    def advance(self, tokens: torch.Tensor) -> None:
        """Append one token per row ([rows] ids) and compute every row's next-token logits."""
        if tokens.shape != (self.rows,):
            raise ValueError(f"tokens: expected one id per row, shape ({self.rows},), got {tuple(tokens.shape)}")
        self.budgets = [b - 1 for b in self.budgets]
        with torch.inference_mode():
            if not self.lean:
                for context, token in zip(self.contexts, tokens.tolist()):
                    context.append(token)
                self.logits = self._plain_logits(self.contexts)
                return
            if self.cache.length + 1 > self.cache.max_len:  # only if a caller fed more than it budgeted
                everyone = torch.arange(self.rows, device=self.device)
                self.cache = self._merge([(self.cache, everyone)], max(MIN_WINDOW, max(self.budgets) + 1))
            self.logits = self.model(tokens[:, None].to(self.device), position_ids=self.positions[:, None],
                                     kv_cache=self.cache)[:, -1]
            self.positions = self.positions + 1

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only the rows `rows` (indices into the current rows, in that order); none empties it."""
        rows = list(rows)
        self.budgets = [self.budgets[i] for i in rows]
        if not rows:
            self.logits, self.cache, self.contexts = None, None, []
            self.positions = self.positions[:0]
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        self.logits = self.logits[index]
        if self.lean:
            self.positions = self.positions[index]
            self.cache.select(index)
        else:
            self.contexts = [self.contexts[i] for i in rows]

    def _plain_logits(self, contexts: list[list[int]]) -> torch.Tensor:
        """Next-token logits of each context by a plain forward over them, left-padded."""
        pad = self.policy.pad_id
        width = max(map(len, contexts))
        ids = torch.tensor([[pad] * (width - len(c)) + c for c in contexts], device=self.device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in contexts], device=self.device)
        positions = self.policy.position_ids(ids, mask)
        return self.model(ids, position_ids=positions, attention_mask=mask, logits_to_keep=1)[:, -1]
