"""The arithmetic env's reversed format (Cho et al. 2024): prompts, the expert, parsing, padding, knobs."""

import random
import re

import pytest
from lm_helpers import has_ten_column

from alphaloop.envs import Problem, make_env
from alphaloop.envs.arithmetic import make_problem


@pytest.mark.parametrize("a,b,rate,prompt,completion", [
    (47, 85, 0.0, "047+085=", "231"),        # 132: units first, n+1 = 3 digits, a leading zero column
    (47, 5, 0.0, "047+005=", "250"),         # the shorter operand zero-padded to the same width
    (999, 999, 0.0, "0999+0999=", "8991"),
    (0, 0, 0.0, "00+00=", "00"),
    (5, 5, 0.0, "05+05=", "01"),
    (5, 5, 1.0, "05+05=", "00"),             # ten is written 0, carry dropped
    (46, 64, 1.0, "046+064=", "000"),        # ... at every ten-column
    (55, 45, 1.0, "055+045=", "090"),        # 5+5 = 10: 0, no carry; 5+4 = 9
    (19, 1, 1.0, "019+001=", "010"),         # 9+1 = 10: 0, no carry; 1+0 = 1
])
def test_reversed_format_hand_computed(a, b, rate, prompt, completion):
    env = make_env("arithmetic", answer_format="reversed", misconception_rate=rate)
    problem = env._problem(a, b, "+", 3)
    assert problem.prompt == prompt and problem.answer == str(a + b)
    assert env.expert(problem, random.Random(0)) == completion
    assert env.expert(Problem(prompt, str(a + b)), random.Random(0)) == completion  # the prompt alone suffices
    assert env.expert(Problem(f"{a}+{b}=", str(a + b)), random.Random(0)) == completion  # unpadded: the same
    assert env.verify(problem, completion) == (rate == 0.0 or a + b == 0)


@pytest.mark.parametrize("completion,parsed", [
    ("231", "132"), (" 2310\n", "132"), ("00", "0"), ("1", "1"), ("", None), ("23 1", None), ("-231", None),
    ("7+5=12 >132", None), ("２３", None),
])
def test_reversed_format_parse(completion, parsed):
    assert make_env("arithmetic", answer_format="reversed").parse_answer(completion) == parsed


def test_reversed_format_misconception_rate_and_bounds():
    env = make_env("arithmetic", split="heldout", answer_format="reversed", misconception_rate=0.5, slip_rate=0.0)
    rng = random.Random(0)
    problems = env.problems("heldout", 400, seed=0)
    wrong = [not env.verify(p, env.expert(p, rng)) for p in problems]
    assert not any(w and not has_ten_column(p.meta["a"], p.meta["b"]) for w, p in zip(wrong, problems))
    assert 0.1 < sum(wrong) / sum(has_ten_column(p.meta["a"], p.meta["b"]) for p in problems) < 0.9
    assert all(len(env.expert(p, rng)) == env.max_completion_chars == 5 for p in problems)
    plain = make_env("arithmetic", split="heldout").problems("heldout", 400, seed=0)
    assert [(p.meta["a"], p.meta["b"]) for p in problems] == [(q.meta["a"], q.meta["b"]) for q in plain]


def test_train_zeros_pad_only_the_train_split():
    env = make_env("arithmetic", answer_format="reversed", train_zeros=2, misconception_rate=0.0)
    rng = random.Random(0)
    train = env.problems("train", 300, seed=0)
    widths = {len(p.prompt.partition("+")[0]) - len(str(max(p.meta["a"], p.meta["b"]))) for p in train}
    assert widths == {1, 2, 3}  # the carry column's zero, and 0..2 more
    for p in train:
        completion = env.expert(p, rng)
        assert env.verify(p, completion) and len(completion) == len(p.prompt.partition("+")[0])
        assert len(completion) <= env.max_completion_chars and len(p.prompt) <= env.max_prompt_chars
    for split in ("test", "heldout"):
        plain = make_env("arithmetic", answer_format="reversed")
        assert env.problems(split, 50, seed=0) == plain.problems(split, 50, seed=0)


def test_positions_knob_names_the_policy_rule():
    assert make_env("arithmetic").position_rule is None
    assert make_env("arithmetic", answer_format="reversed").position_rule is None
    coupled = make_env("arithmetic", answer_format="reversed", positions="coupled", position_offsets=16)
    assert (coupled.position_rule, coupled.position_offsets) == ("coupled", 16)


@pytest.mark.parametrize("knobs,needle", [
    ({"answer_format": "reversed", "ops": "+-"}, "answer_format='reversed' supports ops='+'"),
    ({"answer_format": "reversed", "ops": "*"}, "got ops='*'"),
    ({"answer_format": "reversed", "positions": "coupled", "index_hints": True}, "which index_hints=true breaks"),
    ({"answer_format": "reversed", "positions": "coupled", "random_gaps": 2}, "which random_gaps=2 breaks"),
    ({"answer_format": "reversed", "index_hints": True, "heldout_digits_max": 22, "train_zeros": 4},
     "plus train_zeros in the reversed format"),
    ({"positions": "coupled"}, "positions='coupled' couples"),
    ({"train_zeros": 2}, "train_zeros pads the reversed format"),
    ({"answer_format": "reversed", "position_offsets": 4}, "position_offsets shifts coupled position ids"),
    ({"answer_format": "backwards"}, "knob answer_format='backwards' is not allowed"),
])
def test_reversed_format_knob_errors(knobs, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        make_env("arithmetic", **knobs)


def test_reversed_env_passes_check_env():
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make_env("arithmetic", seed=1, answer_format="reversed", positions="coupled", train_zeros=3),
                  skip_render_check=True)


@pytest.mark.parametrize("a,b,start,prompt,completion", [
    (47, 85, 6, "i0h4g7+i0h8g5=", "g2h3i1"),    # 132: letters name columns, units ('g') first in the answer
    (5, 5, 0, "b0a5+b0a5=", "a0b1"),
    (999, 1, 20, "x0w9v9u9+x0w0v0u1=", "u0v0w0x1"),
])
def test_reversed_index_hints_hand_computed(a, b, start, prompt, completion):
    """Zhou et al. 2024's format: the reversed answer with index hints, each digit after its column's letter."""
    env = make_env("arithmetic", answer_format="reversed", index_hints=True, misconception_rate=0.0)
    width = max(len(str(a)), len(str(b))) + 1
    problem = make_problem(a, b, "+", hint_start=start, pad_width=width)
    assert problem.prompt == prompt
    assert env.expert(problem, random.Random(0)) == completion   # the letters are read off the prompt
    assert env.verify(problem, completion) and env.parse_answer(completion) == str(a + b)


@pytest.mark.parametrize("completion,parsed", [
    ("g2h3i1", "132"), (" g2h3i1\n", "132"), ("a0", "0"), ("231", None), ("g2h3i", None), ("g2 h3", None), ("", None),
])
def test_reversed_index_hints_parse(completion, parsed):
    assert make_env("arithmetic", answer_format="reversed", index_hints=True).parse_answer(completion) == parsed


@pytest.mark.parametrize("split", ["train", "test", "heldout"])
def test_reversed_index_hints_fit_their_bounds_and_keep_the_numbers(split):
    knobs = {"answer_format": "reversed", "misconception_rate": 0.0, "heldout_digits_max": 6}
    env = make_env("arithmetic", split=split, index_hints=True, random_gaps=2, train_zeros=3, **knobs)
    rng = random.Random(0)
    problems = env.problems(split, 200, seed=0)
    for p in problems:
        completion = env.expert(p, rng)
        assert env.verify(p, completion)
        assert len(completion) <= env.max_completion_chars and len(p.prompt) <= env.max_prompt_chars
        assert set(completion) <= set(env.alphabet) and set(p.prompt) <= set(env.alphabet)
    plain = make_env("arithmetic", split=split, train_zeros=3, **knobs).problems(split, 200, seed=0)
    assert [(p.meta["a"], p.meta["b"]) for p in problems] == [(q.meta["a"], q.meta["b"]) for q in plain]
