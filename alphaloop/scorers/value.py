"""Value-head scorer: the PPO critic's estimate of a finished completion's return.

PPO (Schulman et al. 2017) trains V(s_t) = w.h_t + b on the final hidden state towards the GAE
returns (Schulman et al. 2016). With the verifier's reward on the last completion token and
gamma = 1, the critic at the state just before that token regresses on

    V(x, y_<T) ~ E[r(x, y) | x, y_<T] = P(correct | x, y_<T)

so it is a learned verifier for free. We read it at exactly that position (the last one PPO's
loss trains: the state before the final token, normally EOS, when the whole answer is written),
never at the state after EOS, which no loss ever touched.

An agent transcript (env tokens inside, `Episode.action_mask`) is read at the state before its
last action's first token instead -- after the env's last answer, as the agent decides to submit:
the state every critic trains on (per token, and per turn where only action starts are trained).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from alphaloop.agent_memory import memory_of, turn_rows
from alphaloop.batch import pack
from alphaloop.episode import Episode


class ValueScorer:
    """score(episodes) -> V at each completion's final token, from `policy.value_head`."""

    def __init__(self, policy, policy_name: str = "policy", batch_size: int = 256) -> None:
        if getattr(policy, "value_head", None) is None:
            raise ValueError(f"policy {policy_name!r} has no value head, so value-scored decoders (best@K, "
                             "best-value@K) are undefined for it: only an `rl` stage with algorithm='ppo' "
                             "trains one; use judge@K or maj@K for this policy")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.policy = policy
        self.batch_size = batch_size

    @torch.no_grad()
    def score(self, episodes: Sequence[Episode]) -> list[float]:
        for i, e in enumerate(episodes):
            if not e.prompt_ids or not e.action_ids:
                raise ValueError(f"episodes[{i}]: expected prompt_ids and action_ids (the tokens the LM "
                                 "sampled); the value scorer reads the critic at the completion's last token")
        was_training = self.policy.training
        self.policy.eval()
        scores: list[float] = []
        try:
            for start in range(0, len(episodes), self.batch_size):
                chunk = [_as_read(e) for e in episodes[start : start + self.batch_size]]
                input_ids, attention, _ = pack([p for p, _, _ in chunk], [a for _, a, _ in chunk],
                                                  self.policy.pad_id)
                _, values = self.policy.sequence_logprobs(input_ids, attention, return_values=True)
                # values[b, t] = V(x_<=t); the last masked t is the state before the final token.
                last = torch.tensor([len(p) + at - 1 for p, _, at in chunk])
                scores += values.gather(1, last[:, None]).squeeze(1).tolist()
        finally:
            self.policy.train(was_training)
        return scores


def _as_read(episode: Episode) -> tuple[list[int], list[int], int]:
    """(prompt ids, completion ids, the completion offset read): the episode itself, or for an agent played
    with memory its last action's row (the context that action was taken in; `agent_memory.turn_rows`),
    read before that action's first token."""
    if not memory_of(episode):
        return episode.prompt_ids, episode.action_ids, _read_at(episode)
    row = turn_rows(episode)[-1]
    return row.prompt_ids, row.action_ids, 0


def _read_at(episode: Episode) -> int:
    """The completion offset whose predicting state is read: the final token, or for an agent transcript
    the first token of its last action."""
    mask = episode.action_mask
    if not mask or all(mask):
        return len(episode.action_ids) - 1
    last = len(mask) - 1
    while last > 0 and not mask[last]:          # skip trailing env tokens (none after a submit)
        last -= 1
    while last > 0 and mask[last - 1]:
        last -= 1
    return last


__all__ = ["ValueScorer"]
