"""One choice being generated: its tokens, its text, its stop strings, and what has been sent of it.

The engine samples one token per row per step and hands it to the row's `push`, which returns the
`Chunk` to send to the client now (or None). A chunk only ever carries text that is final: text that
might still turn out to be the start of a stop string is held back until the next tokens settle it
(as vLLM's server does), so a stream never shows a client characters that the finished completion
does not contain. The stop string itself is not part of the completion (OpenAI's behaviour).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch


class Detokenizer:
    """Token ids -> text for one tokenizer, cheap enough to run for every row at every step.

    A character tokenizer (word-level model, `Fuse` decoder: every token's text stands alone) decodes
    by concatenating per-token pieces, so a step costs one lookup per row; any other tokenizer (byte
    level BPE, where a character may span tokens) re-decodes the row's ids, under a lock, because a
    Hugging Face fast tokenizer is not safe to call from two threads at once."""

    def __init__(self, tokenizer) -> None:
        from tokenizers import decoders, models

        self.tokenizer = tokenizer
        self.lock = threading.Lock()
        with self.lock:
            self.pieces = [tokenizer.decode([i], skip_special_tokens=True) for i in range(len(tokenizer))]
            # How log-probs name a token: its text, or for a special token (EOS, ...) its own name.
            self.names = [piece or tokenizer.convert_ids_to_tokens(i) for i, piece in enumerate(self.pieces)]
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self.alphabet = set("".join(self.pieces))   # the characters some token writes
        self.concatenates = backend is not None and isinstance(backend.model, models.WordLevel) \
            and isinstance(backend.decoder, decoders.Fuse)

    def text(self, ids: list[int]) -> str:
        if self.concatenates:
            return "".join(self.pieces[i] for i in ids)
        with self.lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)


@dataclass
class TokenInfo:
    """A generated token as the logprobs fields show it: its text, raw log-prob, where its text starts
    in the completion, and the most probable alternatives (text, log-prob), best first."""

    text: str
    logprob: float
    offset: int
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Chunk:
    """What one step adds to one choice: new text, the tokens it came from (when log-probs are asked
    for), and the finish reason once the choice is done ('stop' or 'length'; `stop_reason` is the stop
    string that ended it, if any)."""

    choice: int
    text: str
    tokens: list[TokenInfo]
    finish_reason: str | None = None
    stop_reason: str | None = None
    completion_tokens: int = 0   # once finished: the tokens generated (EOS and a stop string's included)


class Row:
    """One choice of a request: fed one token per step until EOS, a stop string or max_tokens."""

    def __init__(self, choice: int, max_tokens: int, stops: list[str], eos: int | None, want_logprobs: bool,
                 detokenizer: Detokenizer) -> None:
        self.choice = choice
        self.max_tokens = max_tokens
        self.stops = stops
        self.longest_stop = max(map(len, stops), default=0)
        self.eos = eos
        self.want_logprobs = want_logprobs
        self.detokenizer = detokenizer
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0                                   # characters of `text` already sent
        self.pending: list[tuple[TokenInfo, int]] = []  # tokens not sent yet, with where their text ends
        self.finish_reason: str | None = None

    @property
    def generated(self) -> int:
        return len(self.ids)

    def push(self, token: int, logprob: float, top: list[tuple[str, float]] | None = None) -> Chunk | None:
        """Take the step's token; the chunk to send now, if any."""
        self.ids.append(token)
        if token == self.eos:
            return self._finish("stop", None, len(self.text))
        before = len(self.text)
        if self.detokenizer.concatenates:
            self.text += self.detokenizer.pieces[token]
        else:
            self.text = self.detokenizer.text(self.ids)
        if self.want_logprobs:
            self.pending.append((TokenInfo(self.detokenizer.names[token], logprob, before, top or []), len(self.text)))
        if self.stops:
            start = max(0, before - self.longest_stop + 1)   # where a stop string ending in the new text may begin
            hits = [(at, stop) for stop in self.stops if (at := self.text.find(stop, start)) >= 0]
            if hits:
                at, stop = min(hits)
                return self._finish("stop", stop, at)
        if self.generated >= self.max_tokens:
            return self._finish("length", None, len(self.text))
        return self._emit(len(self.text) - self._held_back())

    def _held_back(self) -> int:
        """Trailing characters that must wait: the longest end of the text that begins a stop string,
        or an incomplete character (a byte-level tokenizer's U+FFFD)."""
        held = len(self.text) - len(self.text.rstrip("\ufffd")) if not self.detokenizer.concatenates else 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self.text)), held, -1):
                if self.text.endswith(stop[:k]):
                    held = k
                    break
        return held

    def _emit(self, upto: int, finish: str | None = None, stop_reason: str | None = None) -> Chunk | None:
        text = self.text[self.sent:upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        released = 0
        while released < len(self.pending) and self.pending[released][1] <= upto:
            released += 1
        tokens = [info for info, _ in self.pending[:released]]
        del self.pending[:released]
        if not text and not tokens and finish is None:
            return None
        return Chunk(self.choice, text, tokens, finish, stop_reason)

    def _finish(self, reason: str, stop_reason: str | None, upto: int) -> Chunk:
        self.finish_reason = reason
        self.text = self.text[:upto]
        chunk = self._emit(upto, reason, stop_reason)
        chunk.completion_tokens = self.generated
        self.pending.clear()   # tokens of a stop string (and after it) are not part of the completion
        return chunk


def seeded_generator(seed: int, choice: int) -> torch.Generator:
    """The generator of choice `choice` of a request with `seed`: the n choices of one request draw
    different samples, and the same (seed, choice) always the same ones."""
    import hashlib

    digest = hashlib.blake2b(f"{seed}:{choice}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "big") >> 1)
