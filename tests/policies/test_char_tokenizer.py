import pytest
from transformers import AutoTokenizer

from alphaloop.policies.tokenizer import build_char_tokenizer

ALPHABET = "0123456789+-= \nab"


def test_special_ids_then_alphabet_in_order():
    tok = build_char_tokenizer(ALPHABET)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert len(tok) == 4 + len(ALPHABET)
    assert tok.encode("0a\n ", add_special_tokens=False) == [4, 4 + 15, 4 + 14, 4 + 13]


@pytest.mark.parametrize("text", ["12+34=46", "  lead and trail  ", "a\nb\n\n", " ", "=-=-=", ""])
def test_round_trip_is_exact_including_whitespace(text):
    tok = build_char_tokenizer(ALPHABET + "deilnrt")
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text
    assert tok.decode([1] + ids + [2, 0, 0], skip_special_tokens=True) == text


def test_unknown_character_maps_to_unk():
    tok = build_char_tokenizer(ALPHABET)
    assert tok.encode("1x2", add_special_tokens=False) == [5, 3, 6]


def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path):
    tok = build_char_tokenizer(ALPHABET)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "tokenizer_config.json").is_file()
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "12 + 3 = 15\nab"
    assert loaded.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert loaded.decode(loaded.encode(text, add_special_tokens=False)) == text
    assert (loaded.pad_token, loaded.bos_token, loaded.eos_token, loaded.unk_token) == (
        "<pad>", "<bos>", "<eos>", "<unk>")
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)


@pytest.mark.parametrize("alphabet", ["", "aba"])
def test_bad_alphabet_is_a_clear_error(alphabet):
    with pytest.raises(ValueError, match="alphabet"):
        build_char_tokenizer(alphabet)


def test_the_fast_encoder_equals_the_tokenizer_on_any_text():
    """`CharEncoder` (a dict lookup per character) gives the HF tokenizer's ids, unknown characters,
    whitespace and special-token literals included; a word-level tokenizer is not mistaken for one."""
    import random

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from alphaloop.policies.tokenizer import CharEncoder

    tokenizer = build_char_tokenizer("abc +=\n0123456789")
    encoder = CharEncoder.of(tokenizer)
    assert encoder is not None
    rng = random.Random(0)
    pieces = list("abc +=\n0123456789") + ["\t", "z", "\u2603", "<eos>", "<bos>", "<", ">"]
    for _ in range(200):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert encoder.encode(text) == tokenizer.encode(text, add_special_tokens=False), text
    words = Tokenizer(models.WordLevel(vocab={"<unk>": 0, "a": 1, "b": 2, "ab": 3}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    assert CharEncoder.of(PreTrainedTokenizerFast(tokenizer_object=words, unk_token="<unk>")) is None
