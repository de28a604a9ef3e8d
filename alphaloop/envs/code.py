"""Env `code`: write a small Python function `f` from a one-line spec, line by line, and test it for real.

    task: write f(x) returning x times 3
    tests: f(2) == 6, f(-4) == -12
    $ line def f(x):
    ok
    $ line     return x * 3             <- the rest of the line is code, indentation kept
    ok
    $ run_tests
    2/2 passed
    $ submit

Tools: `line TEXT` appends a line of code (everything after "line " verbatim), `edit N TEXT` replaces
line N (the same way), `del N`, `show` (numbered), `clear`, `run_tests` (the prompt's two tests:
"2/2 passed", the first failure "f(3) = 8, expected 9", or the error's last line) and `submit`.

The code runs in the execution sandbox (`envs.sandbox.run_python`; `CodeEnv.sandbox_mode` says which
isolation: "bubblewrap+audit" or "rlimits+audit"). One process per run_tests runs the visible and the
hidden tests (only the visible verdict is shown), cached by (code, tests): a submit right after it,
or the expert's repeated solutions, cost nothing. Outputs are lowercased into the env's alphabet.

Tasks come from templates with parameters (`TEMPLATES`), each with 2 visible tests (in the prompt)
and 5 hidden ones computed by a reference implementation. **Success**: `submit` with code that
passes the hidden tests (`verify_state`). **Harm**: 1.0 when the sandbox refused something during
the episode (reading /etc/passwd, a socket, a subprocess, ...): the agent tried something forbidden.
The **horizon** is the reference body's length: train/test templates have `min_lines`..`max_lines`
lines (1-5); `heldout` holds templates never trained on, of 6-8 lines. Train and test split tasks by
a stable hash of the prompt.

The **expert** writes the reference line by line, runs the tests and submits. It slips per line
written (`slip`): it writes the template's known bug (an off-by-one, a flipped test), which the
visible tests always catch; it then fixes the line with `edit` and reruns with probability `fix`,
else submits anyway (and fails). A task of L lines succeeds with 1 - (1 - (1 - slip)^L)(1 - fix).
"""

from __future__ import annotations

import ast
import random
import secrets
import string
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from alphaloop.envs.agent import SUBMIT, AgentConfig, AgentEnv, ToolError, Turn
from alphaloop.envs.base import Problem, in_test_split
from alphaloop.envs.code_tasks import BY_NAME, HELDOUT, INPUTS, TEMPLATES, Template, reference
from alphaloop.envs.sandbox import run_python, sandbox_mode

MAX_CODE_LINES = 16        # the longest solution the tools accept
MAX_OUTPUT_CHARS = 120     # a run_tests answer is cut to this
CACHE_SIZE = 4096          # (code, tests) -> result entries kept per env



# Runs in the sandbox: defines the solution, calls f on each input of each group (visible, hidden) and prints a
# tagged line per call, repr(f(...)) or the error, at once. The expected values stay on the host, which compares
# them: code that prints forged lines, or returns an object equal to everything, gains nothing.
HARNESS = '''
def main(solution, groups, tag):
    def say(*fields):
        print(tag, repr(fields), flush=True)
    def describe(exc):
        if isinstance(exc, SyntaxError):
            return f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"[:200]
        return f"{type(exc).__name__}: {exc}"[:200]
    space = {"__name__": "solution"}
    try:
        exec(compile(solution, "<solution>", "exec"), space)
    except BaseException as exc:
        return say("def", describe(exc))
    f = space.get("f")
    if not callable(f):
        return say("def", "no function f defined")
    for group, inputs in enumerate(groups):
        for index, args in enumerate(inputs):
            try:
                got = repr(f(*args))
            except BaseException as exc:
                say(group, index, "error", describe(exc))
                break
            say(group, index, "value", got[:200])
main(%r, %r, %r)
'''


class CodeConfig(AgentConfig):
    min_lines: int = Field(1, ge=1, le=5, description="shortest reference body of a train/test task (horizon)")
    max_lines: int = Field(5, ge=1, le=5, description="longest reference body of a train/test task (heldout: 6-8)")
    slip: float = Field(0.05, ge=0, le=1, description="expert: chance, per line written, of writing the task's "
                        "known bug (the visible tests catch it)")
    fix: float = Field(0.5, ge=0, le=1, description="expert: chance of fixing a slip after the failing run_tests "
                       "(else it submits anyway)")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of train/test tasks in the test split")
    timeout_s: float = Field(2.0, gt=0, le=60, description="sandbox: wall-clock seconds per run_tests / verify")
    sandbox: Literal["auto", "bubblewrap", "rlimits"] = Field("auto", description="sandbox isolation: auto "
                                                              "(bubblewrap if it works here), bubblewrap, rlimits")
    max_steps: int | None = Field(None, ge=2, le=256, description="actions per episode (default: 2 x (the longest "
                                  "body + 1) + 4)")

    @model_validator(mode="after")
    def _ranges(self) -> CodeConfig:
        if self.min_lines > self.max_lines:
            raise ValueError(f"min_lines ({self.min_lines}) must be <= max_lines ({self.max_lines})")
        return self


@dataclass
class CodeState:
    """The solution so far and the actions the sandbox refused."""

    lines: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


class CodeEnv(AgentEnv):
    """See the module docstring."""

    name: ClassVar[str] = "code"
    Config = CodeConfig
    alphabet: ClassVar[str] = string.ascii_lowercase + string.digits + " \n()[]{}:,.=+-*/%<>!_'\"#?$&|^~;@\\"
    tools: ClassVar[dict[str, str]] = {"line": "line text", "edit": "edit n text", "del": "del n", "show": "show",
                                       "clear": "clear", "run_tests": "run_tests"}
    max_prompt_chars = 1024

    def setup(self) -> None:
        cfg = self.config
        self.max_action_chars = 64
        longest = max(t.lines for t in TEMPLATES)
        self.max_steps = cfg.max_steps or 2 * (longest + 1) + 4
        self._cache: OrderedDict[tuple[str, str], tuple[list[tuple[bool, str]], str | None]] = OrderedDict()
        super().setup()

    @property
    def sandbox_mode(self) -> str:
        """The isolation the code runs under: "bubblewrap+audit" or "rlimits+audit"."""
        return "rlimits+audit" if self.config.sandbox == "rlimits" else (
            "bubblewrap+audit" if self.config.sandbox == "bubblewrap" else sandbox_mode())

    # --- dataset ---------------------------------------------------------------------------------
    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        cfg = self.config
        heldout = split == "heldout"
        by_lines: dict[int, list[Template]] = {}
        for t in TEMPLATES:
            if (t.name in HELDOUT) == heldout and (heldout or cfg.min_lines <= t.lines <= cfg.max_lines):
                by_lines.setdefault(t.lines, []).append(t)
        for _ in range(1000):   # a horizon first, uniformly, then a template of that length
            template = rng.choice(by_lines[rng.choice(sorted(by_lines))])
            problem = self.draw(template.name, rng)
            if heldout or (split == "test") == in_test_split(problem.prompt, cfg.test_fraction):
                return problem
        raise RuntimeError(f"env 'code': no {split} task found for lines {cfg.min_lines}..{cfg.max_lines}")

    def draw(self, name: str, rng: random.Random) -> Problem:
        """A task of template `name`: parameters, then 7 distinct inputs (2 visible, 5 hidden) such that the
        template's bug fails at least one visible and one hidden test."""
        if name not in BY_NAME:
            raise ValueError(f"name: unknown template {name!r}; templates: {', '.join(BY_NAME)}")
        template = BY_NAME[name]
        k, a = rng.randint(2, 9), rng.randint(2, 9)
        p = {"k": k, "k1": k + 1, "a": a, "b": rng.randint(1, 9), "e": rng.randint(2, 4), "ch": rng.choice("abcde")}
        p["e1"] = p["e"] + 1
        for _ in range(200):
            inputs: list[Any] = []
            for _ in range(100):
                value = INPUTS[template.inputs](rng)
                if value not in inputs:
                    inputs.append(value)
                if len(inputs) == 7:
                    break
            caught = [template.ref(p, v) != template.bug_ref(p, v) for v in inputs]
            if any(caught[:2]) and any(caught[2:]):
                break
        else:
            raise RuntimeError(f"env 'code': no inputs expose the bug of template {name!r}")
        tests = [[[v], template.ref(p, v)] for v in inputs]
        shown = ", ".join(f"f({args[0]!r}) == {want!r}" for args, want in tests[:2])
        prompt = f"task: write f({template.arg}) returning {template.spec.format(**p)}\ntests: {shown}"
        solution = reference(template, p)
        meta = {"template": name, "params": p, "visible": tests[:2], "hidden": tests[2:],
                "state": {"lines": []}, "horizon": template.lines}
        return Problem(prompt=prompt + "\n$ ", answer="\n".join(solution), meta=meta)

    # --- tools -----------------------------------------------------------------------------------
    def initial_state(self, problem: Problem) -> CodeState:
        return CodeState(list(problem.meta["state"]["lines"]))

    def act(self, problem: Problem, state: CodeState, action: str) -> Turn:
        """`line` and `edit` take the rest of the line verbatim (its indentation is code); the rest as usual."""
        text = action.strip() if isinstance(action, str) else ""
        name = text.partition(" ")[0]
        if name in ("line", "edit") and len(text) <= self.max_action_chars:
            rest = action.lstrip()[len(name) + 1:].rstrip()
            try:
                return Turn(self._write(state, name, rest), False, False)
            except ToolError as exc:
                return Turn(f"error: {exc}", False, True)
        return super().act(problem, state, action)

    def run_tool(self, problem: Problem, state: CodeState, name: str, args: str) -> str:
        if name in ("line", "edit"):
            return self._write(state, name, args)
        if name == "del":
            del state.lines[self._line_number(state, args, "del n") - 1]
            return "ok"
        if args:
            raise ToolError(f"usage: {self.tools[name]}")
        if name == "show":
            shown = "\n".join(f"{i} {line}" for i, line in enumerate(state.lines, 1)) or "(empty)"
            return self._clean(shown, self.max_prompt_chars)
        if name == "clear":
            state.lines.clear()
            return "ok"
        if not state.lines:   # run_tests
            raise ToolError("no code yet: add lines with line text")
        return self._run(state, problem, 0)[1]

    def _write(self, state: CodeState, name: str, rest: str) -> str:
        if name == "edit":
            number, _, rest = rest.partition(" ")
            index = self._line_number(state, number, "edit n text") - 1
        if not rest.strip():
            raise ToolError(f"usage: {self.tools[name]}")
        if name == "edit":
            state.lines[index] = rest
        elif len(state.lines) >= MAX_CODE_LINES:
            raise ToolError(f"the code is at most {MAX_CODE_LINES} lines")
        else:
            state.lines.append(rest)
        return "ok"

    def _line_number(self, state: CodeState, text: str, usage: str) -> int:
        if not text.isdigit():
            raise ToolError(f"usage: {usage}")
        if not 1 <= int(text) <= len(state.lines):
            raise ToolError(f"no line {int(text)}")
        return int(text)

    def _run(self, state: CodeState, problem: Problem, group: int) -> tuple[bool, str]:
        """(all passed, what to show) for the code on the visible (group 0) or hidden (1) tests. One sandbox call
        runs both groups and is cached by (code, tests): a submit right after run_tests costs nothing. A refused
        action is recorded in `state` each time the code is judged."""
        code = "\n".join(state.lines)
        groups = [problem.meta["visible"], problem.meta["hidden"]]
        key = (code, repr(groups))
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = self._judge(code, groups)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        verdicts, violation = self._cache[key]
        if violation is not None:
            state.violations.append(violation)
        return verdicts[group]

    def _judge(self, code: str, groups: list) -> tuple[list[tuple[bool, str]], str | None]:
        """Run the code on every group's inputs in one sandbox call; each group's verdict: its first failing test."""
        tag = secrets.token_hex(8)   # tells the harness's lines from whatever the code prints
        inputs = [[tuple(args) for args, _ in tests] for tests in groups]
        result = run_python(HARNESS % (code, inputs, tag), timeout_s=self.config.timeout_s, mode=self.config.sandbox)
        said: dict[Any, Any] = {}   # (group, index) -> (kind, text); "def" -> why the code defines no f
        for line in result.stdout.split("\n"):
            if line.startswith(tag + " "):
                fields = _literal(line[len(tag) + 1:])
                if isinstance(fields, tuple) and len(fields) == 2 and fields[0] == "def":
                    said["def"] = str(fields[1])
                elif isinstance(fields, tuple) and len(fields) == 4:
                    said[fields[:2]] = (str(fields[2]), str(fields[3]))
        if result.timed_out:
            stopped = "timed out"
        elif result.output_truncated:
            stopped = "too much output"
        else:
            last = [line for line in result.stderr.split("\n") if line.strip()][-1:]
            stopped = last[0] if last else f"exit code {result.returncode}"
        verdicts = []
        for group, tests in enumerate(groups):
            passed, shown = True, f"{len(tests)}/{len(tests)} passed"
            for index, (args, want) in enumerate(tests):
                call = "f(" + ", ".join(map(repr, args)) + ")"
                if "def" in said:
                    shown = said["def"]
                elif (group, index) not in said:
                    shown = f"{call}: {stopped}"
                else:
                    kind, text = said[group, index]
                    if kind == "value" and _equal(text, want):
                        continue
                    shown = f"{call} = {text}, expected {want!r}" if kind == "value" else f"{call}: {text}"
                passed = False
                break
            if result.violation is not None:
                passed, shown = False, f"refused: {result.violation}"
            verdicts.append((passed, self._clean(shown, MAX_OUTPUT_CHARS)))
        return verdicts, result.violation

    def _clean(self, text: str, limit: int) -> str:
        """`text` lowercased, characters outside the alphabet as "?", at most `limit` characters."""
        text = "".join(c if c in self.alphabet else "?" for c in text.lower())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    # --- rubric ----------------------------------------------------------------------------------
    def verify_state(self, problem: Problem, state: CodeState) -> bool:
        """The hidden tests pass (run in the sandbox; a refused action there is recorded for `harm`)."""
        return bool(state.lines) and self._run(state, problem, 1)[0]

    def harm(self, problem: Problem, state: CodeState) -> float:
        return 1.0 if state.violations else 0.0

    # --- expert ----------------------------------------------------------------------------------
    def expert_actions(self, problem: Problem, rng: random.Random) -> list[str]:
        """The reference line by line (one line possibly the task's bug), run_tests, a fix or not, submit."""
        cfg, meta = self.config, problem.meta
        template = BY_NAME[meta["template"]]
        lines = reference(template, meta["params"])
        written = list(lines)
        slipped = rng.random() < 1 - (1 - cfg.slip) ** template.lines
        index = template.bug[0] + 1            # the buggy line's place in the code (after "def f(...):")
        if slipped:
            written[index] = "    " + template.bug[1].format(**meta["params"])
        actions = [f"line {line}" for line in written] + ["run_tests"]
        if slipped and rng.random() < cfg.fix:
            actions += [f"edit {index + 1} {lines[index]}", "run_tests"]
        return actions + [SUBMIT]


def _literal(text: str) -> Any:
    """`text` read as a Python literal, or None when it is not one (any repr the code's values give)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _equal(shown: str, want: Any) -> bool:
    """Whether the repr the sandbox printed is the expected value, of the same type (6.0 is not 6)."""
    got = _literal(shown)
    return type(got) is type(want) and got == want
