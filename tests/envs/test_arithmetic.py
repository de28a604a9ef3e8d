"""The arithmetic env: completion format, the expert's systematic bugs, splits, parsing, knobs."""

import math
import random

import pytest
from lm_helpers import has_ten_column

from alphaloop.envs import Problem, in_test_split, make_env, stable_unit
from alphaloop.envs.arithmetic import chain_chars, make_problem


def expert(a, b, op, seed=0, **knobs):
    env = make_env("arithmetic", ops=op, **knobs)
    return env.expert(make_problem(a, b, op), random.Random(seed))


@pytest.mark.parametrize("a,b,op,rate,completion", [
    (47, 85, "+", 0.0, "7+5=12 4+8+1=13 >132"),
    (347, 285, "+", 0.0, "7+5=12 4+8+1=13 3+2+1=6 >632"),
    (347, 5, "+", 0.0, "7+5=12 4+0+1=5 3+0=3 >352"),
    (999, 999, "+", 0.0, "9+9=18 9+9+1=19 9+9+1=19 >1998"),
    (0, 0, "+", 0.0, "0+0=0 >0"),
    (5, 5, "+", 1.0, "5+5=0 >0"),                               # ten is written 0, carry dropped
    (46, 64, "+", 1.0, "6+4=0 4+6=0 >0"),                       # ... at every ten-column
    (46, 64, "+", 0.0, "6+4=10 4+6+1=11 >110"),
    (52, 17, "-", 0.0, "12-7=5 5-1-1=3 >35"),
    (105, 98, "-", 0.0, "15-8=7 10-9-1=0 1-0-1=0 >7"),
    (100, 1, "-", 1.0, "10-1=9 10-0-1=9 1-0=1 >199"),          # borrow across zero: the 0 lends for free
    (100, 1, "-", 0.0, "10-1=9 10-0-1=9 1-0-1=0 >99"),
    (47, 85, "*", 0.0, "235+3760 >3995"),
    (47, 85, "*", 1.0, "235+376 >611"),                          # partial products not shifted
])
def test_completion_format_hand_computed(a, b, op, rate, completion):
    assert expert(a, b, op, misconception_rate=rate) == completion


def test_three_digit_addition_fits_in_thirty_characters():
    env = make_env("arithmetic", misconception_rate=0.0, slip_rate=0.5)
    rng = random.Random(0)
    lengths = [len(env.expert(p, rng)) for p in env.problems("train", 2000, seed=0)]
    assert max(lengths) <= env.max_completion_chars == 30
    assert sum(lengths) / len(lengths) < 26


@pytest.mark.parametrize("ops", ["+", "-", "*"])
@pytest.mark.parametrize("split", ["train", "heldout"])
def test_expert_never_exceeds_max_completion_chars(ops, split):
    env = make_env("arithmetic", ops=ops, split=split, misconception_rate=0.5, slip_rate=0.3)
    rng = random.Random(1)
    for problem in env.problems(split, 300, seed=1) + [make_problem(9999, 9999, ops)] * (split == "heldout"):
        assert len(env.expert(problem, rng)) <= env.max_completion_chars


def test_completion_bounds_are_tight():
    assert chain_chars("+", 3) == len("9+9=18 9+9+1=19 9+9+1=19 >1998")
    assert chain_chars("-", 1) == len("9-9=0 >0") + 1  # one digit never borrows; the bound allows a '1'
    assert chain_chars("*", 1) == len("81 >81")
    assert chain_chars("*", 2) == len("891+8910 >9801")


def borrows_across_zero(a: int, b: int) -> bool:
    """Column i has top digit 0 and receives a borrow (the digits below of a are smaller than b's)."""
    return any((a // 10**i) % 10 == 0 and a % 10**i < b % 10**i for i in range(1, len(str(a))))


def expert_results(op, rate, trigger, n=2000, **knobs):
    env = make_env("arithmetic", split="test", ops=op, misconception_rate=rate, **knobs)
    rng = random.Random(123)
    rows = []
    for p in env.problems("test", n, seed=11):
        rows.append((env.verify(p, env.expert(p, rng)), trigger(p.meta["a"], p.meta["b"])))
    return rows


@pytest.mark.parametrize("op,trigger", [("+", has_ten_column), ("-", borrows_across_zero)])
def test_expert_errors_are_exactly_the_misconception(op, trigger):
    assert all(ok for ok, _ in expert_results(op, 0.0, trigger))  # no bug: 100%
    rows = expert_results(op, 1.0, trigger)  # always the bug: wrong exactly where it can apply
    assert all(ok != triggered for ok, triggered in rows)
    assert 0.02 < sum(t for _, t in rows) / len(rows) < 0.5  # the bug must occur, but not everywhere


@pytest.mark.parametrize("op,trigger", [("+", has_ten_column), ("-", borrows_across_zero)])
def test_expert_error_rate_matches_rate_times_trigger_count(op, trigger):
    rows = expert_results(op, 0.7, trigger)
    triggered = sum(t for _, t in rows)
    errors = sum(not ok for ok, _ in rows)
    assert all(ok for ok, t in rows if not t)
    assert abs(errors - 0.7 * triggered) < 4 * math.sqrt(triggered * 0.7 * 0.3)


def test_slips_are_per_column():
    env = make_env("arithmetic", digits_min=2, digits_max=2, misconception_rate=0.0, slip_rate=0.2)
    rng = random.Random(5)
    problems = env.problems("train", 2000, seed=2)
    accuracy = sum(env.verify(p, env.expert(p, rng)) for p in problems) / len(problems)
    assert abs(accuracy - 0.8**2) < 0.04  # two columns, each slips with p=0.2, a slip is always wrong
    assert not any(env.verify(p, expert(p.meta["a"], p.meta["b"], "+", slip_rate=1.0, misconception_rate=0))
                   for p in problems[:200])


def test_default_expert_accuracy_on_test():
    rows = expert_results("+", 0.7, has_ten_column)
    accuracy = sum(ok for ok, _ in rows) / len(rows)
    assert 0.83 < accuracy < 0.91


def test_train_and_test_are_disjoint_even_up_to_commuting():
    env = make_env("arithmetic", digits_max=2)

    def keys(split, n):
        return {tuple(sorted((p.meta["a"], p.meta["b"]))) for p in env.problems(split, n, seed=4)}

    # ~5,000 unordered pairs: without a partition these samples would share ~180 of them
    train, test = keys("train", 3000), keys("test", 600)
    assert len(test) > 300 and not train & test


def test_test_fraction_is_the_share_of_test_problems():
    share = sum(in_test_split(f"{i}+{i + 7}", 0.3) for i in range(20_000)) / 20_000
    assert abs(share - 0.3) < 0.015
    assert stable_unit("47+85") == pytest.approx(0.38416614317424214, abs=1e-15)  # splits never reshuffle
    assert stable_unit("47+85") == stable_unit("47+85") and stable_unit("47+85") != stable_unit("47+86")


def test_heldout_has_the_configured_digits():
    env = make_env("arithmetic", split="heldout", heldout_digits_min=4, heldout_digits_max=5, ops="+-")
    problems = env.problems("heldout", 500, seed=0)
    sizes = {len(str(p.meta[k])) for p in problems for k in "ab"}
    assert sizes == {4, 5} and {p.meta["op"] for p in problems} == {"+", "-"}
    assert all(p.meta["a"] >= p.meta["b"] for p in problems if p.meta["op"] == "-")
    # overlapping ranges: heldout keeps only problems the train distribution cannot produce
    overlap = make_env("arithmetic", digits_max=3, heldout_digits_min=2, heldout_digits_max=4)
    assert all(max(len(str(p.meta["a"])), len(str(p.meta["b"]))) == 4
               for p in overlap.problems("heldout", 300, seed=0))


def test_subtraction_results_are_never_negative():
    env = make_env("arithmetic", ops="-")
    assert all(int(p.answer) >= 0 for p in env.problems("train", 1000, seed=0))


@pytest.mark.parametrize("completion,parsed", [
    ("7+5=12 4+8+1=13 >132", "132"),
    (">132", "132"),
    ("  > 132 \n", "132"),
    (">0132", "132"),
    (">000", "0"),
    (">-5", "-5"),
    (">-007", "-7"),
    (">-0", "0"),
    (">12 >13", "13"),
    ("132", None),                      # missing marker
    ("7+5=12", None),
    (">132 thanks", None),              # extra text after the answer
    (">13 2", None),
    (">", None),
    (">-", None),
    ("> +5", None),
    (">1.5", None),
    (">\u0661\u0662", None),            # non-ASCII digits
    ("", None),
    (None, None),
    (">" + "9" * 6000, "9" * 6000),     # beyond int()'s default digit limit: still no exception
])
def test_parse_answer_edge_cases(completion, parsed):
    assert make_env("arithmetic").parse_answer(completion) == parsed


@pytest.mark.parametrize("knobs,needle", [
    ({"digits_max": 0}, "knob digits_max=0 is not allowed: Input should be greater than or equal to 1"),
    ({"digit_max": 3}, "unknown knob 'digit_max' (given 3); allowed knobs: digits_min, digits_max"),
    ({"ops": "+/"}, "knob ops='+/' is not allowed: expected a non-empty string of distinct operations"),
    ({"ops": ""}, "knob ops='' is not allowed"),
    ({"misconception_rate": 1.5}, "knob misconception_rate=1.5 is not allowed: Input should be less than"),
    ({"test_fraction": 0}, "knob test_fraction=0 is not allowed"),
    ({"digits_min": 4, "digits_max": 2}, "digits_min (4) must be <= digits_max (2)"),
])
def test_bad_knobs_name_env_knob_value_and_what_is_allowed(knobs, needle):
    with pytest.raises(ValueError) as caught:
        make_env("arithmetic", **knobs)
    assert str(caught.value).startswith("env 'arithmetic': ") and needle in str(caught.value)


def test_expert_reads_a_hand_made_problem_without_meta():
    env = make_env("arithmetic", ops="+-", misconception_rate=0.0)
    assert env.expert(Problem("47+85=", "132"), random.Random(0)) == "7+5=12 4+8+1=13 >132"
    assert env.expert(Problem("52-17=", "35"), random.Random(0)) == "12-7=5 5-1-1=3 >35"
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        env.expert(Problem("hello", "1"), random.Random(0))


# ------------------------------------------------------------------------------- index hints (opt-in)


@pytest.mark.parametrize("a,b,op,start,rate,prompt,completion", [
    (47, 85, "+", 6, 0.0, "h4g7+h8g5=", "g7+5=12 h4+8+1=13 >i1h3g2"),
    (2931, 9117, "+", 1, 0.0, "e2d9c3b1+e9d1c1b7=", "b1+7=8 c3+1=4 d9+1=10 e2+9+1=12 >f1e2d0c4b8"),
    (347, 5, "+", 0, 0.0, "c3b4a7+a5=", "a7+5=12 b4+0+1=5 c3+0=3 >c3b5a2"),  # the short operand pads with 0
    (0, 0, "+", 25, 0.0, "z0+z0=", "z0+0=0 >z0"),
    (46, 64, "+", 2, 1.0, "d4c6+d6c4=", "c6+4=0 d4+6=0 >c0"),  # the misconception, hinted
    (52, 17, "-", 3, 0.0, "e5d2-e1d7=", "d12-7=5 e5-1-1=3 >e3d5"),
    (105, 98, "-", 0, 0.0, "c1b0a5-b9a8=", "a15-8=7 b10-9-1=0 c1-0-1=0 >a7"),
])
def test_index_hints_hand_computed(a, b, op, start, rate, prompt, completion):
    env = make_env("arithmetic", ops=op, misconception_rate=rate, index_hints=True)
    problem = make_problem(a, b, op, hint_start=start)
    assert problem.prompt == prompt and env.expert(problem, random.Random(0)) == completion
    assert env.parse_answer(completion) == canonical(completion) and env.verify(problem, completion) == (rate == 0)
    # the prompt alone carries the letters: a problem without meta gives the same demonstration
    assert env.expert(Problem(prompt, problem.answer), random.Random(0)) == completion


def canonical(completion: str) -> str:
    """Independent of the env: the digits after the last '>' with the letters dropped."""
    digits = "".join(c for c in completion.rpartition(">")[2] if c.isdigit())
    return str(int(digits))


def test_index_hints_are_off_by_default_and_keep_the_numbers():
    plain, hinted = make_env("arithmetic"), make_env("arithmetic", index_hints=True)
    assert plain.alphabet == "0123456789+-*=> " and plain.max_completion_chars == 30
    assert set(hinted.alphabet) == set(plain.alphabet) | set("abcdefghijklmnopqrstuvwxyz")
    for split in ("train", "test", "heldout"):
        ours = [p.meta for p in make_env("arithmetic", split=split, index_hints=True).problems(split, 200, seed=3)]
        theirs = [p.meta for p in make_env("arithmetic", split=split).problems(split, 200, seed=3)]
        assert [(m["a"], m["b"]) for m in ours] == [(m["a"], m["b"]) for m in theirs]  # same splits, same evals
        assert all("hint_start" not in m for m in theirs)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_index_hints_fit_the_alphabet_and_bounds(split):
    env = make_env("arithmetic", split=split, ops="+-", index_hints=True, misconception_rate=0.5, slip_rate=0.2)
    rng = random.Random(2)
    problems = env.problems(split, 400, seed=5)
    starts = {p.meta["hint_start"] for p in problems}
    assert len(starts) > 15  # the offset varies, so every letter plays every column
    for problem in problems + [make_problem(9999, 9999, "+", hint_start=21)] * (split == "heldout"):
        completion = env.expert(problem, rng)
        assert set(problem.prompt + completion) <= set(env.alphabet)
        assert len(completion) <= env.max_completion_chars and len(problem.prompt) <= env.max_prompt_chars


@pytest.mark.parametrize("completion,parsed", [
    ("g7+5=12 h4+8+1=13 >i1h3g2", "132"),
    (">a0", "0"),
    (">b0a7", "7"),
    (">132", None),       # hints on: bare digits are not the format
    (">i1h3g", None),
    (">i1h3g22", None),
    (">1h3g2", None),
    (">-a5", None),
])
def test_index_hints_parse(completion, parsed):
    assert make_env("arithmetic", index_hints=True).parse_answer(completion) == parsed


def test_index_hints_knob_errors():
    with pytest.raises(ValueError, match="index_hints=true supports ops"):
        make_env("arithmetic", ops="+*", index_hints=True)
    with pytest.raises(ValueError, match="must be <= 25"):
        make_env("arithmetic", heldout_digits_min=26, heldout_digits_max=26, index_hints=True)


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_index_hints_env_passes_check_env(split):
    import warnings

    from gymnasium.utils.env_checker import check_env

    env = make_env("arithmetic", split=split, seed=3, ops="+-", index_hints=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=True)
    prompt, _ = env.reset(seed=1)
    assert prompt in env.observation_space
    _, reward, *_ = env.step(env.expert(env.problem, random.Random(0)))
    assert reward in (0.0, 1.0)


@pytest.mark.parametrize("hints", [False, True])
def test_random_gaps_only_move_the_prompt_digits(hints):
    spaced = make_env("arithmetic", split="heldout", index_hints=hints, random_gaps=2, misconception_rate=0.0)
    tight = make_env("arithmetic", split="heldout", index_hints=hints, misconception_rate=0.0)
    ours, theirs = spaced.problems("heldout", 100, seed=0), tight.problems("heldout", 100, seed=0)
    widths = set()
    for p, q in zip(ours, theirs):
        assert p.prompt.replace(" ", "") == q.prompt and p.answer == q.answer
        assert "  " * 2 not in p.prompt and len(p.prompt) <= spaced.max_prompt_chars
        widths.add(len(p.prompt))
        # the same demonstration, also when the spaced prompt is all the env is given
        completion = tight.expert(q, random.Random(0))
        assert spaced.expert(p, random.Random(0)) == completion
        assert spaced.expert(Problem(p.prompt, p.answer), random.Random(0)) == completion
    assert len(widths) > 5  # positions vary from problem to problem
    assert make_env("arithmetic", random_gaps=1).problems("test", 50, seed=1) == \
        make_env("arithmetic", random_gaps=1).problems("test", 50, seed=1)  # a stable pattern per problem


def test_random_gaps_env_passes_check_env():
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make_env("arithmetic", split="heldout", seed=1, index_hints=True, random_gaps=3),
                  skip_render_check=True)
    with pytest.raises(ValueError, match="random_gaps=4 is not allowed"):
        make_env("arithmetic", random_gaps=4)


@pytest.mark.parametrize("a,b,op,completion", [
    (47, 85, "+", "7+5=12 4+8+1=13 0+0+1=1 0+0=0 >132"),
    (2931, 9117, "+", "1+7=8 3+1=4 9+1=10 2+9+1=12 >12048"),  # already 4 digits: nothing to pad
    (93, 58, "-", "13-8=5 9-5-1=3 0-0=0 0-0=0 >35"),
])
def test_pad_width_pads_prompt_and_chain(a, b, op, completion):
    env = make_env("arithmetic", ops="+-", pad_width=4, misconception_rate=0.0, heldout_digits_max=4)
    problem = make_problem(a, b, op, pad_width=4)
    assert problem.prompt == f"{a:04d}{op}{b:04d}=" and problem.answer == str(a + b if op == "+" else a - b)
    assert env.expert(problem, random.Random(0)) == completion and env.verify(problem, completion)
    assert env.expert(Problem(problem.prompt, problem.answer), random.Random(0)) == completion


def test_pad_width_keeps_the_numbers_and_fits_the_bounds():
    for split in ("train", "heldout"):
        env = make_env("arithmetic", split=split, pad_width=4, misconception_rate=0.5, slip_rate=0.2)
        plain = make_env("arithmetic", split=split)
        rng = random.Random(0)
        for p, q in zip(env.problems(split, 200, seed=2), plain.problems(split, 200, seed=2)):
            assert p.meta["a"] == q.meta["a"] and p.meta["b"] == q.meta["b"] and len(p.prompt) == 10
            assert len(env.expert(p, rng)) <= env.max_completion_chars
    with pytest.raises(ValueError, match="pad_width supports ops"):
        make_env("arithmetic", ops="*", pad_width=4)
