"""The completion formats of `arithmetic`: column chains, index hints, and reversed answers.

Pure functions of the operands (and an rng for the expert's slips); `arithmetic.py` documents the
chain and hint formats, and picks a format per its knobs.

Reversed answers (knob `answer_format = "reversed"`, addition only)
------------------------------------------------------------------
The format of Cho et al. 2024 ("Position coupling"): both operands zero-padded to one width n+1 --
one leading zero more than the longer operand has digits (at least `pad_width`) -- and the
completion is the sum alone, least significant digit first, as many digits as an operand:
`047+085=` -> `231` (132), `05+05=` -> `01` (10). No chain of thought: answer digit j is a
one-column step (operand digits j and the carry from column j-1), which a policy with coupled
position ids (`policies/positions.py`) finds at a fixed relative distance whatever n is. The
leading zero column makes the carry out an ordinary column (0+0+carry), so every answer digit has
an operand column of its own and the answer ends where the operands' columns end ("no operand
digit at my column: stop", the same rule at every length). Least significant first is the order carries flow
(Lee et al. 2023). The expert's misconception applies as in the chain: a column summing to
exactly ten is written 0 and its carry dropped (`05+05=` -> `00`), and each column digit slips
with probability `slip_rate`.
"""

from __future__ import annotations

import random

HINT_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # column names of the index-hint format, least significant first


def digits_of(n: int, width: int) -> list[int]:
    """Least significant first, zero-padded to `width`."""
    return [(n // 10**i) % 10 for i in range(width)]


def canonical_int(text: str) -> str:
    """`-007` -> `-7`, `-0` -> `0`; string-only so a 10,000-digit answer cannot trip int() limits."""
    sign = "-" if text.startswith("-") else ""
    body = text[len(sign):].lstrip("0") or "0"
    return "0" if body == "0" else sign + body


def _slipped(rng: random.Random, digit: int) -> int:
    return rng.choice([d for d in range(10) if d != digit])


def add_columns(a: int, b: int, width: int, confused: bool, slip_rate: float,
                rng: random.Random) -> tuple[list[tuple[int, int, bool, int, int]], int]:
    """The columns of a+b as the (possibly imperfect) expert writes them, least significant first:
    (x, y, carry in, digit written, carry out) each, and the carry out of the last column."""
    columns, carry = [], 0
    for x, y in zip(digits_of(a, width), digits_of(b, width)):
        carry_in, total = bool(carry), x + y + carry
        if confused and total == 10:  # the misconception: "ten is zero", carry forgotten
            digit, carry = 0, 0
        else:
            digit, carry = total % 10, total // 10
            if slip_rate and rng.random() < slip_rate:
                digit = _slipped(rng, digit)
        columns.append((x, y, carry_in, digit, carry))
    return columns, carry


def add_chain(a: int, b: int, confused: bool, slip_rate: float, rng: random.Random, width: int = 0) -> str:
    """At least `width` columns (zero padding), else as many as the longer operand has digits."""
    width = max(len(str(a)), len(str(b)), width)
    columns, carry = add_columns(a, b, width, confused, slip_rate, rng)
    chunks = [f"{x}+{y}" + ("+1" if carry_in else "") + (f"={carry_out}{digit}" if carry_out else f"={digit}")
              for x, y, carry_in, digit, carry_out in columns]
    written = [digit for _, _, _, digit, _ in columns]
    answer = (str(carry) if carry else "") + "".join(str(d) for d in reversed(written))
    return " ".join(chunks) + " >" + canonical_int(answer)


def sub_chain(a: int, b: int, confused: bool, slip_rate: float, rng: random.Random, width: int = 0) -> str:
    """a >= b. A column that must borrow shows its top digit plus ten (`12-7=5`)."""
    width = max(len(str(a)), width)
    chunks, written, borrow = [], [], 0
    for t, u in zip(digits_of(a, width), digits_of(b, width)):
        needs = t - u - borrow < 0
        left = (f"1{t}" if needs else f"{t}") + f"-{u}" + ("-1" if borrow else "")
        digit = t + 10 * needs - u - borrow
        across_zero = t == 0 and borrow == 1
        borrow = int(needs) if not (confused and across_zero) else 0  # the bug: the zero lends for free
        if slip_rate and rng.random() < slip_rate:
            digit = _slipped(rng, digit)
        written.append(digit)
        chunks.append(f"{left}={digit}")
    answer = "".join(str(d) for d in reversed(written))
    return " ".join(chunks) + " >" + canonical_int(answer)


def mul_chain(a: int, b: int, confused: bool, slip_rate: float, rng: random.Random) -> str:
    partials = []
    for j, d in enumerate(digits_of(b, len(str(b)))):
        value = a * d
        if slip_rate and rng.random() < slip_rate:
            value = value - value % 10 + _slipped(rng, value % 10)
        shift = 0 if (confused and j > 0) else j  # the bug: partial products not shifted
        partials.append(value * 10**shift)
    return "+".join(str(p) for p in partials) + " >" + str(sum(partials))


CHAINS = {"+": add_chain, "-": sub_chain, "*": mul_chain}


def chain_chars(op: str, n: int) -> int:
    """Longest completion for operands of at most n digits (see the module docstring)."""
    if op == "+":
        return 10 * n  # 6 + 9(n-1) column chars, ' >', n+1 answer digits
    if op == "-":
        return 10 * n - 1  # 6 + 9(n-1) column chars, ' >', n answer digits
    partials = sum(n + 1 + j for j in range(n))  # a*d*10^j has <= n+1+j digits
    return partials + (n - 1) + 2 + 2 * n


def hinted_units(digits: str, start: int) -> list[str]:
    """'47', 6 -> ['h4', 'g7']: each digit after the letter of its column, the units column being `start`."""
    n = len(digits)
    return [HINT_LETTERS[start + n - 1 - i] + d for i, d in enumerate(digits)]


def hinted_number(digits: str, start: int) -> str:
    """'47', 6 -> 'h4g7'."""
    return "".join(hinted_units(digits, start))


def hinted_chain(chain: str, start: int) -> str:
    """The plain completion with column letters: '7+5=12 4+8+1=13 >132' -> 'g7+5=12 h4+8+1=13 >i1h3g2'."""
    steps, _, answer = chain.partition(" >")
    steps = " ".join(HINT_LETTERS[start + i] + step for i, step in enumerate(steps.split(" ")))
    return f"{steps} >{hinted_number(answer, start)}"


def hinted_reversed(answer: str, start: int) -> str:
    """A reversed-format answer with its columns' letters, units first: '231', 6 -> 'g2h3i1'."""
    return "".join(HINT_LETTERS[start + i] + digit for i, digit in enumerate(answer))


def add_reversed(a: int, b: int, confused: bool, slip_rate: float, rng: random.Random, width: int = 0) -> str:
    """The reversed-format completion of a+b: n+1 digits, least significant first, n = the longer
    operand's digit count (at least `width` digits); `confused` applies the ten-is-zero misconception."""
    width = max(max(len(str(a)), len(str(b))) + 1, width)
    written = [digit for _, _, _, digit, _ in add_columns(a, b, width, confused, slip_rate, rng)[0]]
    return "".join(str(d) for d in written)  # the top column is 0+0 plus the carry: no carry out of it


def parse_reversed(completion: str) -> str | None:
    """The integer a reversed-format completion writes: `2310` -> "132"; None unless it is
    nothing but ASCII digits (whitespace around aside)."""
    body = completion.strip()
    if not body or not (body.isascii() and body.isdigit()):
        return None
    return canonical_int(body[::-1])
