"""Training batches: prompt + completion token ids packed into right-padded tensors (`pack`), or with
each prompt stored once (`CompletionBatch`, the RL layout). Built from `Episode`s, the one experience
record, by the stages; read by the learners and the scorers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alphaloop.agent_memory import learned_mask, rows_of
from alphaloop.episode import Episode


def pack(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
         token_masks: Sequence[Sequence[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return input_ids [B,T], attention_mask [B,T] and completion_mask [B,T-1].

    completion_mask[b, t] is 1 where token t+1 of row b belongs to the completion, i.e. where
    the next-token log-prob at position t is a completion token's: the prompt is masked out of
    every loss (it is given, not produced). `token_masks[b]` (aligned with completions[b]; empty =
    all ones) also masks out the completion tokens an env inserted between an agent's turns.
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
        completion_mask[row, len(prompt) - 1 : len(ids) - 1] = _token_mask(token_masks, row, len(completion))
    return input_ids, attention, completion_mask


def _token_mask(token_masks: Sequence[Sequence[int]] | None, row: int, length: int) -> torch.Tensor | float:
    """Row `row`'s loss mask over its `length` completion tokens (1.0 when it has none)."""
    if token_masks is None or not token_masks[row]:
        return 1.0
    if len(token_masks[row]) != length:
        raise ValueError(f"token_masks[{row}]: expected {length} entries like its completion, got "
                         f"{len(token_masks[row])}")
    return torch.tensor(list(token_masks[row]), dtype=torch.float32)


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
    completion_lens: torch.Tensor | None = None  # [N]; None: mask.sum(1) (no env-inserted tokens)

    @property
    def lengths(self) -> torch.Tensor:
        """Tokens of each completion, env-inserted ones included (the mask leaves those out)."""
        return self.mask.sum(1).long() if self.completion_lens is None else self.completion_lens

    def __len__(self) -> int:
        return self.completion_ids.shape[0]

    def rows(self, index: torch.Tensor) -> CompletionBatch:
        """The completions `index` (a minibatch), with only the prompts they use."""
        used, prompt_of = torch.unique(self.prompt_of[index], return_inverse=True)
        prompt_lens = self.prompt_lens[used]
        completion_ids, mask, lengths = self.completion_ids[index], self.mask[index], self.lengths[index]
        width = max(1, int(lengths.max()))  # trim the completion padding this subset does not need
        return CompletionBatch(self.prompt_ids[used][:, : int(prompt_lens.max())], prompt_lens,
                               completion_ids[:, :width], mask[:, :width], prompt_of, self.pad_id,
                               None if self.completion_lens is None else lengths)

    def full(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The same rows as `pack` lays them out: input_ids and attention_mask [N, Tp+Tc], right-padded."""
        prompts = [p[:n].tolist() for p, n in zip(self.prompt_ids[self.prompt_of], self.prompt_lens[self.prompt_of])]
        completions = [c[: int(n)].tolist() for c, n in zip(self.completion_ids, self.lengths)]
        input_ids, attention, _ = pack(prompts, completions, self.pad_id)
        return input_ids, attention


def pack_completions(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], pad_id: int,
                     token_masks: Sequence[Sequence[int]] | None = None) -> CompletionBatch:
    """Group equal prompts (as G samples of one prompt are) and pad completions to the longest;
    `token_masks` (see `pack`) zero the env-inserted tokens of agent transcripts in `mask`."""
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(f"prompts and completions: expected equal, non-zero lengths, got {len(prompts)} "
                         f"and {len(completions)}")
    index: dict[tuple[int, ...], int] = {}
    prompt_of = [index.setdefault(tuple(p), len(index)) for p in prompts]
    distinct = list(index)
    if min(map(len, distinct)) == 0:
        raise ValueError("prompts: expected non-empty token id lists (start prompts with BOS)")
    prompt_width = max(map(len, distinct))
    # One tensor from padded lists: a tensor per row costs more than the copy (hundreds of rows a step).
    prompt_ids = torch.tensor([list(p) + [pad_id] * (prompt_width - len(p)) for p in distinct], dtype=torch.long)
    lengths = torch.tensor([len(c) for c in completions])
    width = max(1, int(lengths.max()))
    completion_ids = torch.tensor([list(c) + [pad_id] * (width - len(c)) for c in completions], dtype=torch.long)
    mask = (torch.arange(width)[None, :] < lengths[:, None]).float()
    masked = token_masks is not None and any(token_masks)
    if masked:
        for row, completion in enumerate(completions):
            if completion:
                mask[row, : len(completion)] = _token_mask(token_masks, row, len(completion))
    return CompletionBatch(prompt_ids, torch.tensor(list(map(len, distinct))), completion_ids, mask,
                           torch.tensor(prompt_of), pad_id, lengths if masked else None)


def pack_episodes(episodes: Sequence[Episode], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`pack` of the episodes' token ids (prompt_ids, action_ids): the imitation layout. Agent episodes
    played with memory become one row per action (`agent_memory.turn_rows`)."""
    episodes = rows_of(episodes)[0]
    return pack([e.prompt_ids for e in episodes], [e.action_ids for e in episodes], pad_id,
                [learned_mask(e) for e in episodes])


def episode_batch(episodes: Sequence[Episode], pad_id: int) -> CompletionBatch:
    """`pack_completions` of the episodes' token ids: the RL layout (each distinct prompt once). Agent
    episodes played with memory become one row per action (`agent_memory.turn_rows`)."""
    episodes = rows_of(episodes)[0]
    return pack_completions([e.prompt_ids for e in episodes], [e.action_ids for e in episodes], pad_id,
                            [learned_mask(e) for e in episodes])
