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
