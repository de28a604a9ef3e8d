"""Learned reward models: r(x, y) from pairwise preferences, alone or as an ensemble.

A reward model is a language model with a scalar head (InstructGPT's recipe: the SFT model, its
LM head unused, plus a linear head): r(x, y) = w . h + b, with h the final hidden state at the
position that predicts EOS after the response, i.e. once the whole response has been read. It is
trained with the Bradley-Terry loss (`learners/reward_model.py`).

An ensemble of k models trained from different seeds and data orders scores a response with
(Coste et al. 2023, "Reward model ensembles help mitigate overoptimization"):

    mean                  r = mean_i r_i
    mean_minus_std        r = mean_i r_i - lambda * std_i r_i     (uncertainty-weighted)
    min                   r = min_i r_i                           (worst case)

so a response the members disagree on -- typically one unlike the training pairs, where a policy
exploiting one model's quirks ends up -- is not rewarded for one member's optimism.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from alphaloop.batch import pack_completions
from alphaloop.episode import Episode
from alphaloop.errors import UserError

if TYPE_CHECKING:  # loading one imports transformers; a board-game run never should
    from alphaloop.policies.lm import LMPolicy

Aggregate = Literal["mean", "mean_minus_std", "min"]
META_FILE = "reward_model.json"


class RewardModel:
    """r(x, y) from an `LMPolicy` backbone with a value head (see the module docstring)."""

    def __init__(self, backbone: LMPolicy) -> None:
        if backbone.value_head is None:
            raise ValueError("a reward model needs a scalar head: build it with RewardModel.from_policy")
        self.backbone = backbone

    @classmethod
    def from_policy(cls, policy: LMPolicy, seed: int) -> RewardModel:
        """A copy of `policy` with a fresh scalar head, N(0, 1/H) from `seed` (members of an
        ensemble start from the same backbone and differ here and in their data order)."""
        backbone = copy.deepcopy(policy)
        backbone.value_head = None
        head = backbone.add_value_head()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) / head.weight.shape[1] ** 0.5)
        return cls(backbone)

    def parameters(self):
        return self.backbone.parameters()

    def train(self, mode: bool = True) -> None:
        self.backbone.train(mode)

    def rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """r(x_i, y_i) as a [N] tensor (differentiable: used in training)."""
        b = self.backbone
        batch = pack_completions([b.prompt_ids(p) for p in prompts], [b.encode(r) + [b.eos_id] for r in responses],
                                 b.pad_id)
        last = batch.mask.sum(1).long() - 1            # the state that predicts EOS: the response fully read
        return b.completion_values(batch, at=last)

    @torch.no_grad()
    def score_texts(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 256) -> list[float]:
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            return [x for start in range(0, len(prompts), batch_size)
                    for x in self.rewards(prompts[start:start + batch_size],
                                          responses[start:start + batch_size]).tolist()]
        finally:
            self.backbone.train(was_training)

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        """The `Scorer` protocol: r(prompt, completion) for each episode."""
        return self.score_texts([e.prompt for e in episodes], [e.completion for e in episodes])

    def save(self, directory: str | Path) -> None:
        self.backbone.save(directory)


class RewardEnsemble:
    """k reward models and how their scores combine (`aggregate`, `lam` for mean_minus_std)."""

    def __init__(self, members: Sequence[RewardModel], aggregate: Aggregate = "mean", lam: float = 1.0) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one reward model")
        if aggregate not in ("mean", "mean_minus_std", "min"):
            raise ValueError(f"aggregate: expected mean, mean_minus_std or min, got {aggregate!r}")
        self.members = list(members)
        self.aggregate = aggregate
        self.lam = lam

    def member_scores(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """[k, N] rewards of every member (no gradient)."""
        return torch.tensor([m.score_texts(prompts, responses) for m in self.members])

    def combine(self, scores: torch.Tensor) -> torch.Tensor:
        """[k, N] member rewards -> [N] by `aggregate`."""
        if self.aggregate == "min":
            return scores.min(0).values
        mean = scores.mean(0)
        if self.aggregate == "mean" or scores.shape[0] == 1:
            return mean
        return mean - self.lam * scores.std(0)

    def score_texts(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self.combine(self.member_scores(prompts, responses)).tolist()

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        return self.score_texts([e.prompt for e in episodes], [e.completion for e in episodes])

    def save(self, directory: str | Path) -> None:
        """member-<i>/ (HF format + value_head.safetensors) and reward_model.json."""
        directory = Path(directory)
        for i, member in enumerate(self.members):
            member.save(directory / f"member-{i}")
        (directory / META_FILE).write_text(json.dumps({"kind": "bradley-terry", "members": len(self.members),
                                                       "aggregate": self.aggregate, "lam": self.lam}, indent=1))

    @classmethod
    def load(cls, directory: str | Path, aggregate: Aggregate | None = None, lam: float | None = None,
             ) -> RewardEnsemble:
        """A saved ensemble; `aggregate` / `lam` override the saved combination."""
        from alphaloop.policies.lm import LMPolicy

        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            raise UserError(f"{directory}: no {META_FILE}; expected a reward model saved by a reward_model stage")
        meta = json.loads(meta_path.read_text())
        members = [RewardModel(LMPolicy.load(directory / f"member-{i}")) for i in range(int(meta["members"]))]
        return cls(members, aggregate or meta["aggregate"], meta["lam"] if lam is None else lam)


__all__ = ["RewardModel", "RewardEnsemble", "Aggregate"]
