"""The one experience record passed between collect, score and learn.

Every stage speaks `Episode`: the sampler fills observations, actions, token ids and
log-probs; a scorer fills rewards; a learner reads them. A single-turn text task is an
episode with one observation and one action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Episode:
    """One interaction of a policy with an env.

    observations[i] is what the policy saw before actions[i]. For LM policies
    `prompt_ids` / `action_ids` hold the token ids of the (first) observation and of
    the policy's output, and `logprobs[j]` is the sampling log-probability of
    `action_ids[j]` (aligned one-to-one), which importance ratios in RL need.

    A multi-turn (agent) episode keeps every turn in the same record: `actions[i]` is the i-th tool
    call, `observations[i + 1]` the env's answer to it, and `action_ids` the whole transcript after
    the prompt -- the policy's tokens and the env's inserted tokens interleaved. `action_mask[j]` is
    1 where the policy produced `action_ids[j]` and 0 where the env inserted it, so no loss ever
    trains on the env's text (empty: every token is the policy's, as in a single-turn episode).
    """

    observations: list[str]
    actions: list[str] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    action_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    action_mask: list[int] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    success: bool = False
    harm: float = 0.0
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def reward(self) -> float:
        """Undiscounted return of the episode."""
        return float(sum(self.rewards))

    @property
    def prompt(self) -> str:
        return self.observations[0] if self.observations else ""

    @property
    def completion(self) -> str:
        return "".join(self.actions)
