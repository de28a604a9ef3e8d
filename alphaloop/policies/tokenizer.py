"""Character-level tokenizer in Hugging Face format.

Tiny tasks (arithmetic, short text) do not need BPE: one token per character keeps the
vocabulary at a few dozen entries, so the embedding and LM head stay small and every digit is
its own token (which is what lets a 1M-parameter model learn carrying). Built with the HF
`tokenizers` library and wrapped as a `PreTrainedTokenizerFast`, so a saved policy directory
loads with `AutoTokenizer.from_pretrained(dir)` like any other HF checkpoint.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3


def build_char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """One token per character of `alphabet` (ids 4.. in order), after the four special tokens.

    The pre-tokenizer isolates every single character (spaces and newlines included) and the
    decoder concatenates tokens without separators, so `decode(encode(s)) == s` exactly for any
    string over the alphabet. Characters outside the alphabet map to `<unk>`.
    """
    if not isinstance(alphabet, str) or not alphabet:
        raise ValueError(f"alphabet: expected a non-empty string of characters, got {alphabet!r}")
    if len(set(alphabet)) != len(alphabet):
        dupes = sorted({c for c in alphabet if alphabet.count(c) > 1})
        raise ValueError(f"alphabet: expected distinct characters, {dupes!r} appear more than once")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # "isolated" splits turn each regex match (one character, `.` with DOTALL semantics via [\s\S])
    # into its own pre-token; nothing is dropped, so whitespace survives.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        clean_up_tokenization_spaces=False, padding_side="left",
    )


class CharEncoder:
    """`tokenizer.encode(text, add_special_tokens=False)` as a dictionary lookup per character, for
    tokenizers that are character-level (a probe decides: `of`). HF's encode costs tens of
    microseconds a string (a preference step tokenizes a few hundred); this costs one or two. A
    text holding an added token's literal (e.g. "<eos>") goes to the tokenizer itself, which
    matches such literals as single tokens."""

    def __init__(self, table: dict[str, int], unknown: int, tokenizer) -> None:
        self.table, self.unknown, self.tokenizer = table, unknown, tokenizer
        self.literals = [t for t in tokenizer.all_special_tokens if len(t) > 1]

    @classmethod
    def of(cls, tokenizer) -> CharEncoder | None:
        """An encoder for `tokenizer` if it maps every single character to its own vocabulary entry
        (or to UNK) and nothing else: checked on every character of its vocabulary run together with
        whitespace and a character it does not know, which any other kind of tokenizer (BPE, or
        word-level without a per-character split) encodes differently. None otherwise."""
        vocab = tokenizer.get_vocab()
        table = {token: i for token, i in vocab.items() if len(token) == 1}
        unknown = tokenizer.unk_token_id
        if not table or unknown is None:
            return None
        probe = "".join(sorted(table)) + " \n\t\u2603" + "".join(sorted(table))[::-1]
        encoder = cls(table, unknown, tokenizer)
        try:
            expected = tokenizer.encode(probe, add_special_tokens=False)
        except Exception:  # an exotic tokenizer: keep its own encode
            return None
        return encoder if encoder.encode(probe) == expected else None

    def encode(self, text: str) -> list[int]:
        if any(literal in text for literal in self.literals):
            return self.tokenizer.encode(text, add_special_tokens=False)
        get, unknown = self.table.get, self.unknown
        return [get(ch, unknown) for ch in text]
