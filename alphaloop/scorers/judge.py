"""Policy-as-judge: the policy rates its own candidates with a verification prompt.

Generative verification (Zhang et al. 2024, "Generative Verifiers: Reward Modeling as
Next-Token Prediction"; Zheng et al. 2023, "Judging LLM-as-a-judge") asks the LM itself whether
a solution is right and reads the answer's probability instead of sampling it. We score

    s(x, y) = log pi(yes | x, y, check) - log pi(no | x, y, check)

the log-odds of the "correct" verdict after `<prompt><completion><check>`, where multi-token
verdicts sum their token log-probs. The log-odds (rather than log pi(yes) alone) cancels how
much the model likes the verdict tokens in general, leaving how much it believes *this*
candidate. The completion's EOS is dropped, so the verdict follows the answer text directly.

Character tokenizers. A tiny policy's char tokenizer only knows its env's alphabet: arithmetic
has digits and `+-*=> ` and no letters, so `check:` / `yes` / `no` would all be <unk>. The
template is therefore the first of TEMPLATES whose strings the tokenizer encodes without <unk>:
  (" check:", " yes", " no")  any tokenizer with letters (BPE or char)
  (" =", "1", "0")            digits only: read `<completion> =1` as "its check equals true"
and, failing both, the first two plain characters of the vocabulary as yes / no after no check
marker. An untrained policy's verdicts are noise; the scorer is meaningful once the policy has
seen `<prompt><completion><check><verdict>` examples (e.g. imitation on verified samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from alphaloop.batch import pack
from alphaloop.episode import Episode


@dataclass(frozen=True)
class JudgeTemplate:
    """Text appended after the candidate (`check`) and the two verdicts whose log-odds is the score."""

    check: str
    yes: str
    no: str


TEMPLATES = (JudgeTemplate(" check:", " yes", " no"), JudgeTemplate(" =", "1", "0"))


def _encodes(tokenizer, text: str) -> bool:
    """True when `text` is tokenizable without <unk> (and not to nothing, unless it is empty)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    unk = tokenizer.unk_token_id
    return (len(ids) > 0 or text == "") and (unk is None or unk not in ids)


def default_template(tokenizer) -> JudgeTemplate:
    """The first of TEMPLATES the tokenizer can spell, else two plain characters of its vocabulary."""
    for template in TEMPLATES:
        if all(_encodes(tokenizer, t) for t in (template.check, template.yes, template.no)):
            return template
    special = set(tokenizer.all_special_tokens)
    plain = [tok for tok, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
             if tok not in special and len(tok) == 1 and _encodes(tokenizer, tok)]
    if len(plain) < 2:
        raise ValueError("tokenizer: cannot spell a judge verdict (needs two plain characters); "
                         "pass template=JudgeTemplate(check, yes, no) explicitly")
    return JudgeTemplate("", plain[0], plain[1])


class JudgeScorer:
    """score(episodes) -> the policy's log-odds that each candidate is correct (higher is better)."""

    def __init__(self, policy, template: JudgeTemplate | None = None, batch_size: int = 256) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        self.policy = policy
        self.template = template or default_template(policy.tokenizer)
        for field in ("yes", "no"):
            if not getattr(self.template, field):
                raise ValueError(f"template.{field}: expected a non-empty verdict string")
        self.check_ids = policy.encode(self.template.check)
        self.yes_ids = policy.encode(self.template.yes)
        self.no_ids = policy.encode(self.template.no)
        self.batch_size = batch_size

    def _context(self, episode: Episode) -> list[int]:
        """<prompt><completion without EOS><check> as token ids (text re-encoded if ids are absent)."""
        prompt = list(episode.prompt_ids) or self.policy.prompt_ids(episode.prompt)
        completion = list(episode.action_ids) or self.policy.encode(episode.completion)
        if completion and completion[-1] == self.policy.eos_id:
            completion = completion[:-1]
        return prompt + completion + self.check_ids

    def _verdict_logprobs(self, contexts: list[list[int]], verdict: list[int]) -> list[float]:
        input_ids, attention, mask = pack(contexts, [verdict] * len(contexts), self.policy.pad_id)
        logprobs = self.policy.sequence_logprobs(input_ids, attention)
        return (logprobs * mask).sum(dim=1).tolist()

    def _single_token_log_odds(self, contexts: list[list[int]]) -> list[float]:
        """One-token verdicts: both log-probs come from one forward pass over the contexts (the log
        partition cancels in the difference, so raw logits suffice)."""
        input_ids, attention, _ = pack(contexts, [[]] * len(contexts), self.policy.pad_id)
        positions = self.policy.position_ids(input_ids, attention)   # the policy's own rule (coupled ids), if any
        logits = self.policy.model(input_ids, position_ids=positions, attention_mask=attention).float()
        last = logits[torch.arange(len(contexts)), torch.tensor([len(c) - 1 for c in contexts])]
        return (last[:, self.yes_ids[0]] - last[:, self.no_ids[0]]).tolist()

    @torch.no_grad()
    def score(self, episodes: Sequence[Episode]) -> list[float]:
        was_training = self.policy.training
        self.policy.eval()
        scores: list[float] = []
        single = len(self.yes_ids) == 1 and len(self.no_ids) == 1
        try:
            for start in range(0, len(episodes), self.batch_size):
                contexts = [self._context(e) for e in episodes[start : start + self.batch_size]]
                if single:
                    scores += self._single_token_log_odds(contexts)
                    continue
                yes = self._verdict_logprobs(contexts, self.yes_ids)
                no = self._verdict_logprobs(contexts, self.no_ids)
                scores += [y - n for y, n in zip(yes, no)]
        finally:
            self.policy.train(was_training)
        return scores


__all__ = ["JudgeScorer", "JudgeTemplate", "TEMPLATES", "default_template"]
