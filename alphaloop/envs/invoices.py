"""Env `invoices`: enter an inbox of invoice documents into a ledger, reading several layouts.

Tools (one per action; an id is an invoice number, leading zeros ignored; an entry is `NUMBER VENDOR
TOTAL`, e.g. `417 acme 42.50`):

    inbox                       the numbers of the documents in the inbox
    open [ID]                   a document as `NUMBER: TEXT`, its text one line in its own layout
                                (`invoice_docs`); without ID, the next one after the last opened (the
                                first at the start; `(no more documents)` after the last), as a mail
                                reader's "next message"
    list [ID]                   the ledger's entries, one a line (only invoice ID's with an argument)
    add ID VENDOR TOTAL         a new entry, in canonical form: lower-case vendor, total like 42.50
    correct ID FIELD VALUE      set FIELD (vendor or total) of invoice ID's latest entry
    delete ID                   remove invoice ID's latest entry
    submit                      end the episode

Documents print the same fields in different layouts (order, separator, formats: `ref 0417`,
`from ACME`, `amount 42.5`, `sum 42,50`, ...) beside distractors (due date, PO number, phone, tax,
quantity); `add` takes only the canonical form, so entering a document is normalising it. The
ledger starts with some invoices already entered (right, or with one field wrong, or twice) and
the others missing. The horizon is the number of invoices (`min_invoices`..`max_invoices`;
`heldout` uses `heldout_min_invoices`..`heldout_max_invoices`, longer than any trained on, and
layouts never used in train or test; `layouts` chooses the train/test ones).

**Success**: `submit` with the ledger holding exactly one right entry per document. **Harm**: an
entry deleted or duplicated that should not be -- an invoice that had an entry at the start has
none, or an invoice has more entries than max(1, its entries at the start).

The **expert** opens the next document, lists its entries and acts (`add` when missing, `correct`
the wrong field, `delete` the extra copy, nothing when right), until `open` says there are no more
documents; then it submits. Each action depends only on the last two turns, three after a
misspelt command (`memory = 3` suffices). It slips, per required action: it
submits with work left (`slip`), it first issues a misspelt command that errors (`typo`,
harmless: a `Mistake`, played but not imitated), and once per task it may delete a needed entry
or enter an invoice twice (`harm_slip`). It succeeds with probability
(1 - harm_slip) * (1 - slip) ** (required actions).
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from alphaloop.envs.agent import SUBMIT, AgentConfig, AgentEnv, ToolError, fresh, misspelt, task_in_test_split
from alphaloop.envs.base import Problem
from alphaloop.envs.invoice_docs import (
    HELDOUT_LAYOUTS,
    NAMED_LAYOUTS,
    Invoice,
    Layout,
    random_invoice,
    random_layout,
    vendor_name,
)

PROMPT = "task: enter the inbox\n$ "
STATUSES = ("missing", "entered", "wrong", "twice")   # an invoice's entries in the ledger at the start
NUMBER = re.compile(r"\d{1,6}")
VENDOR = re.compile(r"[a-z]{1,12}")
TOTAL = re.compile(r"(0|[1-9]\d{0,5})\.\d\d")   # canonical: no leading zeros


class InvoicesConfig(AgentConfig):
    min_invoices: int = Field(1, ge=1, le=12, description="fewest documents in a train/test inbox (horizon)")
    max_invoices: int = Field(3, ge=1, le=12, description="most documents in a train/test inbox (horizon)")
    heldout_min_invoices: int = Field(4, ge=1, le=12, description="fewest documents in a heldout inbox")
    heldout_max_invoices: int = Field(5, ge=1, le=12, description="most documents in a heldout inbox")
    entered: float = Field(0.2, ge=0, le=1, description="chance that a document is already entered right")
    wrong: float = Field(0.15, ge=0, le=1, description="chance that a document is entered with one field wrong "
                         "(to correct)")
    twice: float = Field(0.1, ge=0, le=1, description="chance that a document is entered twice (delete one)")
    slip: float = Field(0.1, ge=0, le=1, description="expert: chance, at each required action, of submitting "
                        "with work left")
    typo: float = Field(0.05, ge=0, le=1, description="expert: chance of a misspelt command (an error it "
                        "recovers from) before each required action")
    harm_slip: float = Field(0.02, ge=0, le=1, description="expert: chance per task of deleting a needed entry "
                             "or entering an invoice twice")
    layouts: Literal["random", "named"] = Field("random", description="train/test documents: 'random' draws each "
                                                "document's layout from every order and combination of the "
                                                "formats (the held-out three excluded); 'named' from eight "
                                                "fixed layouts")
    made_up_vendors: float = Field(0.0, ge=0, le=1, description="share of vendors that are made-up names "
                                   "(`tiro`) rather than one of the 24 usual ones (each with its own first "
                                   "letter): too many to memorise, so only copying the vendor out of the "
                                   "document gets them right")
    test_fraction: float = Field(0.2, ge=0, lt=1, description="share of tasks in the test split")
    max_steps: int | None = Field(None, ge=2, le=256, description="actions per episode (default: 5 x the most "
                                  "invoices + 6)")

    @model_validator(mode="after")
    def _ranges(self) -> InvoicesConfig:
        if self.min_invoices > self.max_invoices:
            raise ValueError(f"min_invoices ({self.min_invoices}) must be <= max_invoices ({self.max_invoices})")
        if self.heldout_min_invoices > self.heldout_max_invoices:
            raise ValueError(f"heldout_min_invoices ({self.heldout_min_invoices}) must be <= "
                             f"heldout_max_invoices ({self.heldout_max_invoices})")
        if self.entered + self.wrong + self.twice >= 1:
            raise ValueError(f"entered + wrong + twice ({self.entered} + {self.wrong} + {self.twice}) must be "
                             "< 1: the rest is the chance that a document is missing from the ledger")
        return self


class InvoicesEnv(AgentEnv):
    """See the module docstring."""

    name: ClassVar[str] = "invoices"
    Config = InvoicesConfig
    alphabet: ClassVar[str] = string.ascii_letters + string.digits + " .,:|#$/-'()\n"
    tools: ClassVar[dict[str, str]] = {"inbox": "inbox", "open": "open [id]", "list": "list [id]",
                                       "add": "add id vendor total", "correct": "correct id field value",
                                       "delete": "delete id"}

    def setup(self) -> None:
        cfg = self.config
        self.max_action_chars = 48
        self.max_steps = cfg.max_steps or 5 * max(cfg.max_invoices, cfg.heldout_max_invoices) + 6
        super().setup()

    # --- dataset ---------------------------------------------------------------------------------
    def sample_problem(self, rng: random.Random, split: str) -> Problem:
        cfg = self.config
        heldout = split == "heldout"
        low, high = ((cfg.heldout_min_invoices, cfg.heldout_max_invoices) if heldout
                     else (cfg.min_invoices, cfg.max_invoices))
        for _ in range(1000):
            problem = self._draw(rng, rng.randint(low, high), heldout)
            if heldout or (split == "test") == task_in_test_split(problem.prompt, problem.meta["state"],
                                                                  cfg.test_fraction):
                return problem
        raise RuntimeError(f"env 'invoices': no {split} task found (test_fraction={cfg.test_fraction})")

    def _layout(self, rng: random.Random, heldout: bool) -> Layout:
        if heldout:
            return rng.choice(HELDOUT_LAYOUTS)
        return random_layout(rng) if self.config.layouts == "random" else rng.choice(NAMED_LAYOUTS)

    def _draw(self, rng: random.Random, count: int, heldout: bool) -> Problem:
        cfg = self.config
        invoices = [random_invoice(rng, n, cfg.made_up_vendors) for n in rng.sample(range(100, 1000), count)]
        weights = (1 - cfg.entered - cfg.wrong - cfg.twice, cfg.entered, cfg.wrong, cfg.twice)
        statuses = rng.choices(STATUSES, weights, k=count)
        if all(s == "entered" for s in statuses):   # always some work: submitting at once never succeeds
            statuses[rng.randrange(count)] = rng.choices(STATUSES[:1] + STATUSES[2:], weights[:1] + weights[2:])[0]
        ledger: list[list[str]] = []
        for invoice, status in zip(invoices, statuses):
            if status in ("entered", "twice"):
                ledger += [invoice.entry() for _ in range(2 if status == "twice" else 1)]
            elif status == "wrong":
                ledger.append(_wrong_entry(invoice, rng, cfg.made_up_vendors))
        rng.shuffle(ledger)
        docs = [[inv.number, self._layout(rng, heldout).render(inv, rng)] for inv in invoices]
        state = {"inbox": docs, "ledger": ledger}
        meta = {"state": state, "invoices": [inv.entry() for inv in invoices], "statuses": statuses,
                "horizon": count}
        answer = "; ".join(" ".join(entry) for entry in sorted(meta["invoices"]))
        return Problem(prompt=PROMPT, answer=answer, meta=meta)

    # --- tools -----------------------------------------------------------------------------------
    def initial_state(self, problem: Problem) -> dict:
        """A fresh copy, one list per entry (two equal entries of a hand-made state never share one), and
        the reader's place in the inbox: `opened`, the index of the last document opened (-1: none yet)."""
        state = fresh(problem.meta["state"])
        state["ledger"] = [list(entry) for entry in state["ledger"]]
        state["opened"] = -1
        return state

    def run_tool(self, problem: Problem, state: dict, name: str, args: str) -> str:
        words = args.split()
        arity = {"inbox": (0, 0), "open": (0, 1), "list": (0, 1), "add": (3, 3), "correct": (3, 3),
                 "delete": (1, 1)}[name]
        if not arity[0] <= len(words) <= arity[1]:
            raise ToolError(f"usage: {self.tools[name]}")
        ledger = state["ledger"]
        if name == "inbox":
            return " ".join(number for number, _ in state["inbox"]) or "(empty)"
        number = _number(words[0]) if words else None
        if name == "open":
            return _open(state, number)
        if name == "list":
            entries = [e for e in ledger if number is None or e[0] == number]
            return "\n".join(" ".join(e) for e in entries) or "(none)"
        if name == "add":
            entry = [number, _field("vendor", words[1]), _field("total", words[2])]
            ledger.append(entry)
            copies = sum(e[0] == number for e in ledger)
            return "ok" if copies == 1 else f"ok, {copies} entries for {number}"
        latest = max((i for i, e in enumerate(ledger) if e[0] == number), default=None)
        if latest is None:
            raise ToolError(f"no entry for {number}")
        if name == "delete":
            del ledger[latest]
            return "ok"
        if words[1] not in ("vendor", "total"):
            raise ToolError(f"field must be vendor or total, got '{words[1][:12]}'")
        ledger[latest][1 if words[1] == "vendor" else 2] = _field(words[1], words[2])
        return "ok"

    # --- rubric ----------------------------------------------------------------------------------
    def verify_state(self, problem: Problem, state: dict) -> bool:
        expected = Counter(tuple(entry) for entry in problem.meta["invoices"])
        return Counter(tuple(entry) for entry in state["ledger"]) == expected

    def harm(self, problem: Problem, state: dict) -> float:
        """Entries deleted or duplicated: each invoice that had an entry at the start and has none now,
        plus each entry beyond max(1, the invoice's entries at the start)."""
        before = Counter(entry[0] for entry in problem.meta["state"]["ledger"])
        after = Counter(entry[0] for entry in state["ledger"])
        lost = sum(1 for number in before if after[number] == 0)
        extra = sum(max(0, count - max(1, before[number])) for number, count in after.items())
        return float(lost + extra)

    # --- expert ----------------------------------------------------------------------------------
    def expert_actions(self, problem: Problem, rng: random.Random) -> list[str]:
        """Per document: open the next one, list its entries, make the one change it needs; when `open` says
        there are no more, submit. Each action depends only on the last three turns: a policy with
        `memory = 3` can follow it, whatever the inbox's length. (An expert that read the `inbox` before
        each document and opened it by number left a memory-3 policy choosing the next number: 0.59 of
        its `open`s and 0.38 of its `submit`s right after 700 imitation steps, teacher-forced.)"""
        cfg, meta = self.config, problem.meta
        invoices = [Invoice(*entry) for entry in meta["invoices"]]
        statuses = meta["statuses"]
        harm_at = rng.randrange(len(invoices)) if rng.random() < cfg.harm_slip else None
        actions = []
        for k, (invoice, status) in enumerate(zip(invoices, statuses)):
            actions += ["open", f"list {invoice.number}"]
            fix = _fix(invoice, status, meta["state"]["ledger"])
            if fix is not None:
                if rng.random() < cfg.slip:     # believes the ledger done: submits with work left
                    return actions + [SUBMIT]
                if rng.random() < cfg.typo:
                    actions.append(misspelt(fix))
                actions.append(fix)
            if k == harm_at:   # deletes the entry it just made right, or enters the invoice again
                delete = status != "missing" and (status == "twice" or rng.random() < 0.5)
                actions.append(f"delete {invoice.number}" if delete else "add " + " ".join(invoice.entry()))
        return actions + ["open", SUBMIT]


def _open(state: dict, number: str | None) -> str:
    """Document `number` (the next after the last opened when None) as `NUMBER: TEXT`; the reader's place
    moves to it. Printing the number first lets an agent read it off without knowing the layout."""
    numbers = [n for n, _ in state["inbox"]]
    if number is None:
        index = state["opened"] + 1
        if index >= len(numbers):
            return "(no more documents)"
    elif number in numbers:
        index = numbers.index(number)
    else:
        raise ToolError(f"no document {number} in the inbox")
    state["opened"] = index
    return f"{numbers[index]}: {state['inbox'][index][1]}"


def _fix(invoice: Invoice, status: str, ledger: list[list[str]]) -> str | None:
    """The one action that makes an invoice's entries right, given its status at the start."""
    if status == "missing":
        return "add " + " ".join(invoice.entry())
    if status == "twice":
        return f"delete {invoice.number}"
    if status == "wrong":
        entry = next(e for e in ledger if e[0] == invoice.number)
        field = "vendor" if entry[1] != invoice.vendor else "total"
        return f"correct {invoice.number} {field} {invoice.vendor if field == 'vendor' else invoice.total}"
    return None


def _wrong_entry(invoice: Invoice, rng: random.Random, made_up_share: float) -> list[str]:
    """The invoice's entry with one field wrong: another vendor, or a total off by a typing slip."""
    if rng.random() < 0.5:
        return [invoice.number, vendor_name(rng, invoice.vendor, made_up_share), invoice.total]
    whole, cents = invoice.total.split(".")
    dollars = int(whole) + rng.choice((-10, -1, 1, 10, 100)) if int(whole) > 10 else int(whole) + 1
    return [invoice.number, invoice.vendor, f"{dollars}.{cents}"]


def _number(word: str) -> str:
    """An invoice number as the inbox writes it: numbers compare as numbers, so `0417` names 417."""
    if not NUMBER.fullmatch(word):
        raise ToolError(f"id must be an invoice number like 417, got '{word[:12]}'")
    return str(int(word))


def _field(field: str, word: str) -> str:
    """A vendor or total in canonical form; anything else is refused, saying what is expected."""
    pattern, example = (VENDOR, "lower-case letters like acme") if field == "vendor" else (TOTAL, "like 42.50")
    if not pattern.fullmatch(word):
        raise ToolError(f"{field} must be {example}, got '{word[:12]}'")
    return word

