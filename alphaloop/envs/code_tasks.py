"""The `code` env's tasks: templates of small functions, each with a reference body, the bug its
expert slips into, the reference and buggy semantics (to compute tests and to check that the tests
catch the bug), and the kind of input it takes."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HELDOUT = frozenset({"largest_even", "prime", "binary", "collatz"})  # templates never trained on (the heldout split)


@dataclass(frozen=True)
class Template:
    """One kind of task. `spec` and `body` are formatted with the task's parameters; `body` holds the
    reference lines joined by "|"; `bug` = (body line, buggy text) and `bug_ref` what the buggy code returns."""

    name: str
    arg: str
    spec: str
    body: str
    bug: tuple[int, str]
    ref: Callable[[dict, Any], Any]
    bug_ref: Callable[[dict, Any], Any]
    inputs: str

    @property
    def lines(self) -> int:
        return self.body.count("|") + 1


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def _collatz(n: int) -> int:
    return 0 if n <= 1 else 1 + _collatz(n // 2 if n % 2 == 0 else 3 * n + 1)


def _prime(n: int) -> int:
    return int(n >= 2 and all(n % d for d in range(2, n)))


T = Template
TEMPLATES = (
    T("times", "x", "x times {k}", "return x * {k}", (0, "return x * {k1}"),
      lambda p, x: x * p["k"], lambda p, x: x * p["k1"], "int"),
    T("reverse", "s", "s reversed", "return s[::-1]", (0, "return s[:0:-1]"),
      lambda p, s: s[::-1], lambda p, s: s[:0:-1], "str"),
    T("largest", "xs", "the largest item", "return max(xs)", (0, "return xs[-1]"),
      lambda p, xs: max(xs), lambda p, xs: xs[-1], "ints"),
    T("linear", "x", "{a} times x plus {b}", "y = x * {a}|return y + {b}", (1, "return y - {b}"),
      lambda p, x: x * p["a"] + p["b"], lambda p, x: x * p["a"] - p["b"], "int"),
    T("clamp", "x", "x capped at {k}", "if x > {k}:|    return {k}|return x", (0, "if x < {k}:"),
      lambda p, x: min(x, p["k"]), lambda p, x: p["k"] if x < p["k"] else x, "int"),
    T("absolute", "x", "the absolute value of x", "if x < 0:|    return -x|return x", (1, "    return x"),
      lambda p, x: abs(x), lambda p, x: x, "int"),
    T("factorial", "n", "the factorial of n", "r = 1|for i in range(2, n + 1):|    r = r * i|return r",
      (1, "for i in range(2, n):"), lambda p, n: math.factorial(n), lambda p, n: math.factorial(max(n - 1, 0)),
      "small"),
    T("power", "x", "x to the power {e}", "r = 1|for i in range({e}):|    r = r * x|return r",
      (1, "for i in range({e1}):"), lambda p, x: x ** p["e"], lambda p, x: x ** p["e1"], "int"),
    T("fib", "n", "the nth fibonacci number", "a, b = 0, 1|for i in range(n):|    a, b = b, a + b|return a",
      (1, "for i in range(n - 1):"), lambda p, n: _fib(n), lambda p, n: _fib(max(n - 1, 0)), "count"),
    T("scaled", "xs", "each item times {k}", "r = []|for x in xs:|    r.append(x * {k})|return r",
      (2, "    r.append(x + {k})"), lambda p, xs: [x * p["k"] for x in xs], lambda p, xs: [x + p["k"] for x in xs],
      "ints"),
    T("count_above", "xs", "how many items exceed {k}", "c = 0|for x in xs:|    if x > {k}:|        c = c + 1|return c",
      (2, "    if x < {k}:"), lambda p, xs: sum(x > p["k"] for x in xs), lambda p, xs: sum(x < p["k"] for x in xs),
      "ints"),
    T("sum_even", "xs", "the sum of the even items",
      "t = 0|for x in xs:|    if x % 2 == 0:|        t = t + x|return t", (2, "    if x % 2 == 1:"),
      lambda p, xs: sum(x for x in xs if x % 2 == 0), lambda p, xs: sum(x for x in xs if x % 2 == 1), "ints"),
    T("digit_sum", "n", "the sum of the digits of n",
      "t = 0|while n > 0:|    t = t + n % 10|    n = n // 10|return t", (1, "while n > 9:"),
      lambda p, n: sum(map(int, str(n))), lambda p, n: sum(map(int, str(n)[1:])), "digits"),
    T("vowels", "s", "s without its vowels",
      "r = ''|for c in s:|    if c not in 'aeiou':|        r = r + c|return r", (2, "    if c in 'aeiou':"),
      lambda p, s: "".join(c for c in s if c not in "aeiou"), lambda p, s: "".join(c for c in s if c in "aeiou"),
      "str"),
    # heldout: never trained on, and longer
    T("largest_even", "xs", "the largest even item, or -1 if none",
      "m = -1|for x in xs:|    if x % 2 == 0:|        if x > m:|            m = x|return m", (2, "    if x % 2 == 1:"),
      lambda p, xs: max([x for x in xs if x % 2 == 0], default=-1),
      lambda p, xs: max([x for x in xs if x % 2 == 1], default=-1), "nats"),
    T("prime", "n", "1 if n is prime, else 0",
      "if n < 2:|    return 0|for d in range(2, n):|    if n % d == 0:|        return 0|return 1",
      (2, "for d in range(1, n):"), lambda p, n: _prime(n), lambda p, n: 0, "pos"),
    T("binary", "n", "the binary digits of n as a string",
      "if n == 0:|    return '0'|r = ''|while n > 0:|    r = str(n % 2) + r|    n = n // 2|return r",
      (4, "    r = r + str(n % 2)"), lambda p, n: format(n, "b"), lambda p, n: format(n, "b")[::-1], "byte"),
    T("collatz", "n", "the collatz steps from n to 1",
      "c = 0|while n > 1:|    if n % 2 == 0:|        n = n // 2|    else:|        n = 3 * n + 1|    c = c + 1|return c",
      (1, "while n > 2:"), lambda p, n: _collatz(n), lambda p, n: max(_collatz(n) - 1, 0), "pos"),
)
BY_NAME = {t.name: t for t in TEMPLATES}
INPUTS: dict[str, Callable[[random.Random], Any]] = {
    "int": lambda r: r.randint(-20, 20), "small": lambda r: r.randint(0, 8), "count": lambda r: r.randint(0, 20),
    "digits": lambda r: r.randint(0, 99999), "pos": lambda r: r.randint(1, 40), "byte": lambda r: r.randint(0, 64),
    "str": lambda r: "".join(r.choice("abcdefghijklmnopqrstu") for _ in range(r.randint(2, 6))),
    "ints": lambda r: [r.randint(-9, 20) for _ in range(r.randint(3, 6))],
    "nats": lambda r: [r.randint(0, 30) for _ in range(r.randint(3, 6))],
}


def reference(template: Template, params: dict) -> list[str]:
    """The reference solution's lines: the def, then the body indented by four spaces."""
    return [f"def f({template.arg}):"] + ["    " + line.format(**params) for line in template.body.split("|")]
