"""`arithmetic`: integer addition (and subtraction, multiplication) with a chain of thought.

The completion format
---------------------
Prompt `47+85=`, completion `7+5=12 4+8+1=13 >132`: one chunk per column from the least
significant, each restating the two digits (a missing digit of the shorter operand is written
0), an explicit `+1` for the carry-in, and the column's value; then ` >` and the answer.

Why this shape:
* Short. Every character is a generated token in RL; a 3-digit sum takes at most 30 characters
  (`10n` for n-digit addition: 6 for the first column, 9 per further column, ` >` and n+1 digits).
* Local steps. Restating the digits turns each column into a lookup in a one-digit table plus a
  copy, the scratchpad idea of Nye et al. 2021 ("Show your work"); writing the carry makes the
  only long-range dependency explicit.
* Least significant first. The column values *are* the answer reversed, the order in which
  carries flow; Lee et al. 2023 ("Teaching arithmetic to small transformers") find reversed
  output is learned far faster by small transformers than most-significant-first. The final
  ` >132` restates it in normal order, so the answer reads normally and is checked exactly.
* Uniform chunks. Every column has the same shape `x+y[+1]=v` whatever the operand lengths, so
  a 4-digit (held-out) sum is the 3-digit pattern once more, which is what length
  generalisation needs. (Explicit position hints, Zhou et al. 2023, would help more but cost
  tokens on every column; the chunk structure is the cheap version of the same hint.)

Subtraction orders the operands so that a >= b (no negative results): `52-17=` gives
`12-7=5 5-1-1=3 >35`; a borrow shows as the top digit written with a leading 1 (`12`), and the
borrow-out as `-1` in the next column. Multiplication (off by default) writes the shifted
partial products by the digits of b, least significant first, then the total:
`47*85=` gives `235+3760 >3995`.

The imperfect expert: systematic "bugs", as in Brown & Burton 1978 and VanLehn 1990
----------------------------------------------------------------------------------------------
With probability `misconception_rate` per problem the expert holds a misconception and applies
it at every place it can, writing the wrong step into the chain of thought and following it:
* addition: a column whose value is exactly ten (x+y+carry == 10) is written `=0` and its carry
  is dropped, so `5+5=` gives `5+5=0 >0`. The result is A+B - sum of dropped 10^(i+1), always
  wrong; so P(wrong) = misconception_rate * P(some column sums to ten).
* subtraction ("borrow across zero"): a column whose top digit is 0 and that receives a borrow
  is written correctly (`10-u-1=v`) but does not pass its own borrow on, so `100-1=` gives
  `10-1=9 10-0-1=9 1-0=1 >199`; always wrong, by +10^(i+1) per dropped borrow.
* multiplication ("forgot the shift"): partial products after the first are not shifted.
Independently, each column (partial product for `*`) is a random slip with probability
`slip_rate`: its written digit is replaced by a different one.

Index hints (opt-in knob `index_hints`, addition and subtraction)
-----------------------------------------------------------------
Off by default, the policy picks each column's digits by their absolute position in the prompt, so
a model trained on 1-3 digits reads the wrong digits of a 4-digit operand and stops one column
early (docs/results.md). With `index_hints = true` every digit carries a letter naming its column,
as in Zhou et al. 2023 ("What algorithms can transformers learn? A study in length
generalization"): `47+85=` becomes `h4g7+h8g5=` and the completion
`g7+5=12 h4+8+1=13 >i1h3g2`. Each column step starts with its letter and copies the digits that
follow that letter in the prompt -- a lookup by content, not by position -- and the answer names
its digits' columns the same way (most significant first, so it still reads as 132). The first
letter is an offset drawn per problem (a stable hash of the problem) from a-z, so every letter
is seen in every role during training and the held-out lengths use no unseen letter; the operand
numbers, and so the splits and the eval sets, are the same as without hints.

Hints alone do not stop a model from finding digits by position: with 1-3 digit operands the
relative positions of each column's digits are fixed per operand length, and that shortcut is
learned first. The knob `random_gaps = N` puts 0..N spaces (a stable hash of the problem again)
between the prompt's digits -- or letter-digit pairs -- and around the operator, as the random
spaces of Shen et al. 2023 ("Positional description matters for transformers arithmetic"), so
only the letters say which digit belongs to which column: `h4 g7+  h8g5 =`.

`pad_width = W` (opt-in, '+' and '-') writes both operands with leading zeros to W digits, in the
prompt and in the chain: `0047+0085=` gives `7+5=12 4+8+1=13 0+0+1=1 0+0=0 >132`. Zero padding
(Lee et al. 2023) gives every problem the same layout, so with W >= heldout_digits_max a held-out
sum has the chain length seen in training -- only its high columns hold digits never seen there
(training pads them with 0) -- which separates "the model cannot write a 4th column" from "the
model cannot add in a 4th column".

Reversed answers (opt-in knob `answer_format = "reversed"`, '+' only; `arithmetic_formats.py`): operands
zero-padded to one width, a zero column more than the longer operand has digits, and the sum alone,
least significant digit first, as many digits as an operand: `47+85=` is written `047+085=` and
answered `231`; `47+5=` is `047+005=` -> `250`. With `positions = "coupled"` a freshly built policy
gives each digit the position id of its significance (`policies/positions.py`, Cho et al. 2024), the
env's `position_rule`: the format that generalises to longer operands (docs/generalisation.md).

Splits: `train` and `test` share one distribution (each operand's digit count uniform in
[digits_min, digits_max], op uniform over `ops`) and are partitioned by a stable hash of the
problem with commuted operands identified (so `85+47` is in test iff `47+85` is); `heldout`
draws digit counts from [heldout_digits_min, heldout_digits_max] and excludes problems the
train distribution could produce.
"""

from __future__ import annotations

import random
import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from alphaloop.envs.arithmetic_formats import (  # noqa: F401 -- chain_chars, digits_of, hinted_*: re-exported
    CHAINS,
    HINT_LETTERS,
    add_reversed,
    canonical_int,
    chain_chars,
    digits_of,
    hinted_chain,
    hinted_number,
    hinted_reversed,
    hinted_units,
    parse_reversed,
)
from alphaloop.envs.base import EnvConfig, Problem, TextEnv, in_test_split, stable_unit

MAX_DIGITS = 30
_SAMPLING_TRIES = 10_000
_HINTED_ANSWER = re.compile(r"^(?:[a-z][0-9])+$")


class ArithmeticConfig(EnvConfig):
    digits_min: int = Field(1, ge=1, le=MAX_DIGITS, description="fewest digits of an operand (train/test)")
    digits_max: int = Field(3, ge=1, le=MAX_DIGITS, description="most digits of an operand (train/test)")
    heldout_digits_min: int = Field(4, ge=1, le=MAX_DIGITS,
                                    description="fewest digits of an operand (heldout)")
    heldout_digits_max: int = Field(4, ge=1, le=MAX_DIGITS, description="most digits of an operand (heldout)")
    ops: str = Field("+", description="operations to draw from, any of '+-*' (e.g. '+-')")
    misconception_rate: float = Field(0.7, ge=0, le=1,
                                      description="P(the expert applies its systematic bug to a problem)")
    slip_rate: float = Field(0.0, ge=0, le=1, description="P(a random wrong digit) per column of the expert")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="share of train/test problems that are test")
    index_hints: bool = Field(False, description="name every digit's column with a letter (h4g7+h8g5=), so "
                                                 "column steps find digits by content: helps length generalisation")
    random_gaps: int = Field(0, ge=0, le=3, description="0..N random spaces between the prompt's digits (or "
                                                        "letter-digit pairs), so positions do not give columns away")
    pad_width: int = Field(0, ge=0, le=MAX_DIGITS, description="write operands with leading zeros to this many "
                                                               "digits, in the prompt and the chain (0 = off)")
    answer_format: Literal["chain", "reversed"] = Field(
        "chain", description="'chain': column steps then ' >' and the answer; 'reversed' ('+' only): operands "
                             "zero-padded to one width (a zero column on top), completion = the sum's digits least "
                             "significant first, as wide as an operand (047+085= -> 231), as in Cho et al. 2024")
    positions: Literal["default", "coupled"] = Field(
        "default", description="position ids of a freshly built policy: 'coupled' (needs answer_format='reversed') "
                               "gives digits of one significance in operands and answer one RoPE id (Cho et al. 2024)")
    position_offsets: int = Field(0, ge=0, le=64, description="with positions='coupled': shift each problem's "
                                                              "coupled ids by 0..N (a hash of the prompt) against BOS "
                                                              "and '+', so no id gives a column away")
    train_zeros: int = Field(0, ge=0, le=MAX_DIGITS,
                             description="reversed format: 0..N extra leading zeros on the train split's operands (a "
                                         "stable hash of the problem), so wider layouts are seen, not longer numbers")

    @field_validator("ops")
    @classmethod
    def _ops(cls, value: str) -> str:
        if not value or any(op not in "+-*" for op in value) or len(set(value)) != len(value):
            raise ValueError("expected a non-empty string of distinct operations from '+-*', "
                             "e.g. '+' or '+-'")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> ArithmeticConfig:
        if self.digits_min > self.digits_max:
            raise ValueError(f"digits_min ({self.digits_min}) must be <= digits_max ({self.digits_max})")
        if self.heldout_digits_min > self.heldout_digits_max:
            raise ValueError(f"heldout_digits_min ({self.heldout_digits_min}) must be <= "
                             f"heldout_digits_max ({self.heldout_digits_max})")
        if self.index_hints and "*" in self.ops:
            raise ValueError(f"index_hints=true supports ops '+' and '-' (column-by-column chains), got "
                             f"ops={self.ops!r}")
        if self.pad_width and "*" in self.ops:
            raise ValueError(f"pad_width supports ops '+' and '-' (column-by-column chains), got ops={self.ops!r}")
        if self.answer_format == "reversed" and self.ops != "+":
            raise ValueError(f"answer_format='reversed' supports ops='+' only, got ops={self.ops!r}")
        if self.positions == "coupled" and (self.index_hints or self.random_gaps):
            clash = "index_hints=true" if self.index_hints else f"random_gaps={self.random_gaps}"
            raise ValueError(f"positions='coupled' reads each operand as one run of digits, which {clash} breaks up; "
                             "use one or the other")
        if self.train_zeros and self.answer_format != "reversed":
            raise ValueError(f"train_zeros pads the reversed format's operands, which needs answer_format='reversed', "
                             f"got answer_format={self.answer_format!r}")
        if self.position_offsets and self.positions != "coupled":
            raise ValueError(f"position_offsets shifts coupled position ids, which needs positions='coupled', "
                             f"got positions={self.positions!r}")
        if self.positions == "coupled" and self.answer_format != "reversed":
            raise ValueError("positions='coupled' couples operand and answer digits of one significance, which needs "
                             f"answer_format='reversed', got answer_format={self.answer_format!r}")
        columns = max(self.digits_max, self.heldout_digits_max, self.pad_width) + 1  # the carry's column too
        if self.answer_format == "reversed":
            columns += self.train_zeros
        if self.index_hints and columns > len(HINT_LETTERS):
            raise ValueError(f"index_hints=true names each column (and the carry) with one of "
                             f"{len(HINT_LETTERS)} letters, so digits_max and heldout_digits_max (plus train_zeros "
                             f"in the reversed format) must be <= {len(HINT_LETTERS) - 1}")
        return self



class ArithmeticEnv(TextEnv):
    """Integer arithmetic with a digit-by-digit chain of thought and a systematically wrong expert."""

    name: ClassVar[str] = "arithmetic"
    Config: ClassVar[type[ArithmeticConfig]] = ArithmeticConfig
    alphabet: ClassVar[str] = "0123456789+-*=> "
    config: ArithmeticConfig

    def setup(self) -> None:
        c = self.config
        digits = c.heldout_digits_max if self.split == "heldout" else c.digits_max
        n = max(digits, c.pad_width)
        if c.answer_format == "reversed":  # operands and answer n+1 digits (train_zeros more on the train split)
            n = max(digits + 1, c.pad_width) + (c.train_zeros if self.split == "train" else 0)
        self.max_completion_chars = max(chain_chars(op, n) for op in c.ops) if c.answer_format == "chain" else n
        if c.index_hints:  # a letter per column step and per answer digit (per answer digit alone when reversed)
            self.max_completion_chars += 2 * n + 1 if c.answer_format == "chain" else n
        # The position rule a freshly built policy gets (`policies/positions.py`), saved in its config.
        self.position_rule = "coupled" if c.positions == "coupled" else None
        self.position_offsets = c.position_offsets
        widest = max(c.digits_max, c.heldout_digits_max, c.pad_width)  # digits of an operand in a prompt
        if c.answer_format == "reversed":  # a leading zero more than the longest operand has digits
            widest = max(c.digits_max + 1, c.heldout_digits_max + 1, c.pad_width) + c.train_zeros
        self.max_prompt_chars = 2 * widest + 2
        if c.index_hints:  # a letter per prompt digit
            self.alphabet = type(self).alphabet + HINT_LETTERS
            self.max_prompt_chars += 2 * widest
        self.max_prompt_chars += c.random_gaps * (2 * widest + 1)

    # --- dataset -------------------------------------------------------------------------------
    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        c = self.config
        heldout = split == "heldout"
        low, high = (c.heldout_digits_min, c.heldout_digits_max) if heldout else (c.digits_min, c.digits_max)
        for _ in range(_SAMPLING_TRIES):
            da, db = rng.randint(low, high), rng.randint(low, high)
            op = rng.choice(c.ops)
            a, b = random_operand(rng, da), random_operand(rng, db)
            if op == "-" and a < b:
                a, b = b, a
            if heldout:
                if not (c.digits_min <= da <= c.digits_max and c.digits_min <= db <= c.digits_max):
                    return self._problem(a, b, op, high)
            elif in_test_split(problem_key(a, b, op), c.test_fraction) == (split == "test"):
                return self._problem(a, b, op, high, zeros=c.train_zeros if split == "train" else 0)
        raise ValueError(f"env 'arithmetic': split {split!r} has (almost) no problems "
                         f"with knobs {c.model_dump()}")

    def _problem(self, a: int, b: int, op: str, most_digits: int, zeros: int = 0) -> Problem:
        c = self.config
        pad_width, columns = c.pad_width, max(most_digits, c.pad_width)  # columns: the hint letters' room
        if c.answer_format == "reversed":  # both operands at one width, a zero column for the carry out
            pad_width = max(max(len(str(a)), len(str(b))) + 1, pad_width)
            if zeros:  # 0..zeros more leading zeros, the same for the same problem
                pad_width += int(stable_unit(f"zeros:{a}{op}{b}") * (zeros + 1))
            columns = pad_width - 1  # the answer has a letter per operand column, the top (carry) one included
        hint_start = default_hint_start(a, b, op, columns) if c.index_hints else None
        return make_problem(a, b, op, hint_start=hint_start, max_gap=c.random_gaps, pad_width=pad_width)

    # --- demonstrations ------------------------------------------------------------------------
    def expert(self, problem: Problem, rng: random.Random) -> str:
        a, b, op = operands(problem)
        confused = rng.random() < self.config.misconception_rate
        c = self.config
        if c.answer_format == "reversed":  # as wide as the prompt's operands (padding included)
            width = sum(char.isdigit() for char in problem.prompt.partition("+")[0])
            answer = add_reversed(a, b, confused, c.slip_rate, rng, width=max(width, c.pad_width))
            if not c.index_hints:
                return answer
            start = hint_start_of(problem)
            if start is None:  # a plain prompt given to a hinted env: the start sample_problem would pick
                start = default_hint_start(a, b, op, len(answer) - 1)
            return hinted_reversed(answer, start)
        if c.pad_width:
            chain = CHAINS[op](a, b, confused, c.slip_rate, rng, width=c.pad_width)
        else:
            chain = CHAINS[op](a, b, confused, c.slip_rate, rng)
        if not self.config.index_hints:
            return chain
        start = hint_start_of(problem)
        if start is None:  # a plain prompt given to a hinted env: the start sample_problem would pick
            start = default_hint_start(a, b, op, max(c.digits_max, c.heldout_digits_max, c.pad_width))
        return hinted_chain(chain, start)

    # --- rubric ----------------------------------------------------------------------------------
    def parse_answer(self, completion: str) -> str | None:
        """The integer after the last `>`, which must end the completion (whitespace aside); in the
        reversed format the whole completion, read least significant digit first (`231` -> "132").

        `... >0132 ` gives "132" and `>-5` gives "-5"; no marker, text after the number, or
        anything but an optional '-' and ASCII digits gives None.
        """
        if not isinstance(completion, str):
            return None
        if self.config.answer_format == "reversed":  # `231`: the digits, least significant first
            if self.config.index_hints:  # `g2h3i1`: letter-digit pairs, units first
                body = completion.strip()
                return parse_reversed(body[1::2]) if _HINTED_ANSWER.match(body) else None
            return parse_reversed(completion)
        marker = completion.rfind(">")
        if marker < 0:
            return None
        tail = completion[marker + 1 :].strip()
        if self.config.index_hints:  # `i1h3g2`: letter-digit pairs, the answer is the digits
            return canonical_int(tail[1::2]) if _HINTED_ANSWER.match(tail) else None
        body = tail[1:] if tail.startswith("-") else tail
        if not body or not (body.isascii() and body.isdigit()):
            return None
        return canonical_int(tail)


def random_operand(rng: random.Random, digits: int) -> int:
    return rng.randint(0, 9) if digits == 1 else rng.randint(10 ** (digits - 1), 10**digits - 1)


def problem_key(a: int, b: int, op: str) -> str:
    """The split key; commuted operands share it so test never sees train's `b+a`."""
    if op in "+*":
        a, b = min(a, b), max(a, b)
    return f"{a}{op}{b}"


def make_problem(a: int, b: int, op: str, hint_start: int | None = None, max_gap: int = 0,
                 pad_width: int = 0) -> Problem:
    """`47+85=`; with index hints starting at letter `hint_start` (6 = 'g') `h4g7+h8g5=`; with
    `max_gap` > 0, 0..max_gap spaces (a stable hash of the problem) between the prompt's pieces; with
    `pad_width` W, operands zero-padded to W digits (`0047+0085=`)."""
    value = a + b if op == "+" else a - b if op == "-" else a * b
    meta = {"a": a, "b": b, "op": op, "digits": max(len(str(a)), len(str(b)))}
    left, right = str(a).zfill(pad_width), str(b).zfill(pad_width)
    if hint_start is None:
        pieces = [*left, op, *right, "="]
    else:
        meta["hint_start"] = hint_start
        pieces = [*hinted_units(left, hint_start), op, *hinted_units(right, hint_start), "="]
    if max_gap:
        gaps = random.Random(f"gaps:{a}{op}{b}")
        pieces = [pieces[0]] + [" " * gaps.randint(0, max_gap) + piece for piece in pieces[1:]]
    return Problem(prompt="".join(pieces), answer=str(value), meta=meta)


def default_hint_start(a: int, b: int, op: str, most_digits: int) -> int:
    """The letter offset of a problem: a stable hash of it, uniform over the offsets that leave room for
    `most_digits` columns and a carry, so every letter takes every role across problems."""
    room = len(HINT_LETTERS) - most_digits  # offsets 0 .. room-1 fit most_digits + 1 letters
    return int(stable_unit(f"hint:{a}{op}{b}") * room)


def hint_start_of(problem: Problem) -> int | None:
    """The letter of the units column: from meta, or read off a hinted prompt (the letter before
    the first operand's last digit); None for a plain prompt."""
    if "hint_start" in problem.meta:
        return int(problem.meta["hint_start"])
    left = re.split(r"[-+*]", problem.prompt.replace(" ", ""), maxsplit=1)[0]
    if len(left) >= 2 and left[-2] in HINT_LETTERS:
        return HINT_LETTERS.index(left[-2])
    return None


def operands(problem: Problem) -> tuple[int, int, str]:
    """(a, b, op) from the problem's meta, or parsed from a prompt like `47+85=` (or `h4 g7+h8g5=`)."""
    meta = problem.meta
    if {"a", "b", "op"} <= meta.keys():
        return int(meta["a"]), int(meta["b"]), str(meta["op"])
    text = "".join(c for c in problem.prompt if c not in HINT_LETTERS and c != " ").rstrip("=")
    for op in "+-*":
        left, sep, right = text.partition(op)
        if sep and left.isascii() and left.isdigit() and right.isascii() and right.isdigit():
            return int(left), int(right), op
    raise ValueError(f"not an arithmetic prompt: {problem.prompt!r} (expected e.g. '47+85=')")
