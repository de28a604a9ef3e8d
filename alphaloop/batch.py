"""Training batches: prompt + completion token ids packed into right-padded tensors (`pack`), or with
each prompt stored once (`CompletionBatch`, the RL layout). Built from `Episode`s, the one experience
record, by the stages; read by the learners and the scorers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alphaloop.episode import Episode


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


@dataclass
class CompletionBatch:
    """Completions with their prompts stored once: the RL training layout.

    prompt_ids [P,Tp] holds the distinct prompts, right-padded, with lengths prompt_lens [P];
    completion_ids [N,Tc] the completions, right-padded (with pad_id); mask [N,Tc] is 1.0 on
    completion tokens and prompt_of [N] names each completion's prompt. Per-token tensors of the
    learner (log-probs, advantages, values) are [N,Tc] in this layout: completion tokens only.
    """

    prompt_ids: torch.Tensor
    prompt_lens: torch.Tensor
    completion_ids: torch.Tensor
    mask: torch.Tensor
    prompt_of: torch.Tensor
    pad_id: int

    def __len__(self) -> int:
        return self.completion_ids.shape[0]

    def rows(self, index: torch.Tensor) -> CompletionBatch:
        """The completions `index` (a minibatch), with only the prompts they use."""
        used, prompt_of = torch.unique(self.prompt_of[index], return_inverse=True)
        prompt_lens = self.prompt_lens[used]
        completion_ids, mask = self.completion_ids[index], self.mask[index]
        width = max(1, int(mask.sum(1).max()))  # trim the completion padding this subset does not need
        return CompletionBatch(self.prompt_ids[used][:, : int(prompt_lens.max())], prompt_lens,
                               completion_ids[:, :width], mask[:, :width], prompt_of, self.pad_id)

    def full(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The same rows as `pack` lays them out: input_ids and attention_mask [N, Tp+Tc], right-padded."""
        prompts = [p[:n].tolist() for p, n in zip(self.prompt_ids[self.prompt_of], self.prompt_lens[self.prompt_of])]
        completions = [c[: int(m.sum())].tolist() for c, m in zip(self.completion_ids, self.mask)]
        input_ids, attention, _ = pack(prompts, completions, self.pad_id)
        return input_ids, attention


def pack_completions(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
                     ) -> CompletionBatch:
    """Group equal prompts (as G samples of one prompt are) and pad completions to the longest."""
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(f"prompts and completions: expected equal, non-zero lengths, got {len(prompts)} "
                         f"and {len(completions)}")
    index: dict[tuple[int, ...], int] = {}
    prompt_of = [index.setdefault(tuple(p), len(index)) for p in prompts]
    distinct = list(index)
    if min(map(len, distinct)) == 0:
        raise ValueError("prompts: expected non-empty token id lists (start prompts with BOS)")
    prompt_ids = torch.full((len(distinct), max(map(len, distinct))), pad_id, dtype=torch.long)
    for row, prompt in enumerate(distinct):
        prompt_ids[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
    width = max(1, max(map(len, completions)))
    completion_ids = torch.full((len(completions), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(completions), width), dtype=torch.float32)
    for row, completion in enumerate(completions):
        if completion:
            completion_ids[row, : len(completion)] = torch.tensor(list(completion), dtype=torch.long)
            mask[row, : len(completion)] = 1.0
    return CompletionBatch(prompt_ids, torch.tensor(list(map(len, distinct))), completion_ids, mask,
                           torch.tensor(prompt_of), pad_id)


def pack_episodes(episodes: Sequence[Episode], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`pack` of the episodes' token ids (prompt_ids, action_ids): the imitation layout."""
    return pack([e.prompt_ids for e in episodes], [e.action_ids for e in episodes], pad_id)


def episode_batch(episodes: Sequence[Episode], pad_id: int) -> CompletionBatch:
    """`pack_completions` of the episodes' token ids: the RL layout (each distinct prompt once)."""
    return pack_completions([e.prompt_ids for e in episodes], [e.action_ids for e in episodes], pad_id)
