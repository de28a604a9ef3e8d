"""Pack prompt + completion token ids into right-padded training tensors."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return input_ids [B,T], attention_mask [B,T] and completion_mask [B,T-1].

    completion_mask[b, t] is 1 where token t+1 of row b belongs to the completion, i.e. where
    the next-token log-prob at position t is a completion token's: the prompt is masked out of
    every loss (it is given, not produced).
    """
    lengths = [len(p) + len(c) for p, c in zip(prompts, completions)]
    width = max(lengths)
    batch = len(lengths)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    completion_mask = torch.zeros((batch, width - 1), dtype=torch.float32)
    for row, (prompt, completion) in enumerate(zip(prompts, completions)):
        ids = list(prompt) + list(completion)
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
        completion_mask[row, len(prompt) - 1 : len(ids) - 1] = 1.0
    return input_ids, attention, completion_mask
