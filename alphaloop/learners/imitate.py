"""Imitation: next-token negative log-likelihood on completion tokens only.

    L(theta) = - sum_{b,t} m_{b,t} log pi_theta(y_{b,t+1} | y_{b,<=t}) / sum_{b,t} m_{b,t}

where m masks in the completion (and its EOS) and masks out the prompt: supervised fine-tuning /
behaviour cloning as in InstructGPT's SFT step (Ouyang et al. 2022). A token-mean, so long and
short demonstrations weigh each of their tokens equally.
"""

from __future__ import annotations

import torch

from alphaloop.batch import CompletionBatch


def imitation_loss(policy, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   completion_mask: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """`position_ids` replace the policy's own (randomised positions, `policies.positions.random_positions`)."""
    logprobs = policy.sequence_logprobs(input_ids, attention_mask, position_ids=position_ids)
    return -(logprobs * completion_mask).sum() / completion_mask.sum().clamp_min(1.0)


def completion_imitation_loss(policy, batch: CompletionBatch) -> torch.Tensor:
    """The same token-mean over a `CompletionBatch` (prompts and completions apart): the policy's
    `completion_logprobs` runs the token-wise layers over real tokens only, never over the padding of
    rows of unequal length -- agent rows (`agent_memory.turn_rows`: contexts of 30 to 230 tokens,
    actions of a few) waste more than half a padded batch."""
    logprobs = policy.completion_logprobs(batch)[0]
    return -(logprobs * batch.mask).sum() / batch.mask.sum().clamp_min(1.0)
