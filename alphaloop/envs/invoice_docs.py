"""Invoice documents for the `invoices` env: canonical entries, field formats, layouts, rendering, parsing.

An invoice is three fields in canonical form -- the number (`417`), the vendor (`acme`) and the total
(`42.50`) -- and the ledger entry that records it is exactly those three words (`add 417 acme 42.50`).
A document shows the same fields in one of several layouts: a layout is a field order, a separator
and one format per field, with distractor fields (a due date, a PO number, a phone number, the tax,
a quantity) that must not be entered:

    inv 417 | vendor: acme | total: 42.50 | due 03/05
    from ACME no. 417 amount 42.5 tel 555-0192
    ref 0417, from ACME, tax 3.40, total: 42.50

Entering a document is normalising it: the number without zero padding, the vendor in lower case
without `Ltd`, the total with two decimals and a point. Every field format is labelled, so a
document parses unambiguously (`parse`), and the held-out layouts recombine formats that the
train/test layouts use, in orders and combinations never seen there: a policy that reads fields by
their labels can enter them.

Train/test documents come either from the eight `NAMED_LAYOUTS` or from `random_layout`, any order
of one format per field with up to two distractors (about 64,000 field sequences, the held-out three
excluded). Eight layouts can be memorised by position (`the vendor follows the first bar`), which
does not carry to a new layout; thousands cannot, so what is learnt is to read each field by its
label -- the skill the held-out layouts ask for.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from alphaloop.envs.names import usual_or_made_up

# Each with its own first letter: a policy that finds the vendor's first letter in a document knows the name.
VENDORS = ("acme", "bolt", "civic", "delta", "echo", "fern", "globe", "helix", "ion", "jade", "kite", "lumen",
           "metro", "nova", "orbit", "pixel", "quill", "rivet", "sol", "terra", "umber", "vista", "wren", "zeta")
AMOUNT = r"\d+\.\d\d"


@dataclass(frozen=True)
class Invoice:
    """One invoice in canonical form: what its ledger entry holds."""

    number: str     # "417": digits, no leading zeros
    vendor: str     # "acme": lower case
    total: str      # "42.50": two decimals

    def entry(self) -> list[str]:
        return [self.number, self.vendor, self.total]


def cents_text(cents: int) -> str:
    """The canonical total: 4250 -> "42.50"."""
    return f"{cents // 100}.{cents % 100:02d}"


def short_total(total: str) -> str:
    """A total without trailing zeros, as some layouts print it: "42.50" -> "42.5", "42.00" -> "42"."""
    return total.rstrip("0").rstrip(".")


def canonical_total(text: str) -> str:
    """Any total format the layouts print ("42.5", "42", "42,50", "42.50") in canonical form."""
    whole, _, frac = text.replace(",", ".").partition(".")
    return f"{int(whole)}.{(frac + '00')[:2]}"


@dataclass(frozen=True)
class FieldFormat:
    """How one field is printed (`render`, from the invoice and a random source for distractors) and
    read back (`pattern`, a regex whose named group, if any, is the field's text)."""

    render: Callable[[Invoice, random.Random], str]
    pattern: str


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(count))


FORMATS: dict[str, FieldFormat] = {
    # the invoice number
    "id:inv": FieldFormat(lambda inv, rng: f"inv {inv.number}", r"inv (?P<number>\d+)"),
    "id:no": FieldFormat(lambda inv, rng: f"no. {inv.number}", r"no\. (?P<number>\d+)"),
    "id:hash": FieldFormat(lambda inv, rng: f"#{inv.number}", r"#(?P<number>\d+)"),
    "id:ref": FieldFormat(lambda inv, rng: f"ref {int(inv.number):04d}", r"ref (?P<number>\d{4})"),
    # the vendor
    "vendor:label": FieldFormat(lambda inv, rng: f"vendor: {inv.vendor}", r"vendor: (?P<vendor>[a-z]+)"),
    "vendor:from": FieldFormat(lambda inv, rng: f"from {inv.vendor.upper()}", r"from (?P<vendor>[A-Z]+)"),
    "vendor:ltd": FieldFormat(lambda inv, rng: f"{inv.vendor.title()} Ltd", r"(?P<vendor>[A-Z][a-z]+) Ltd"),
    # the total
    "total:label": FieldFormat(lambda inv, rng: f"total: {inv.total}", rf"total: (?P<total>{AMOUNT})"),
    "total:amount": FieldFormat(lambda inv, rng: f"amount {short_total(inv.total)}",
                                r"amount (?P<total>\d+(?:\.\d\d?)?)"),
    "total:dollar": FieldFormat(lambda inv, rng: f"${inv.total}", rf"\$(?P<total>{AMOUNT})"),
    "total:sum": FieldFormat(lambda inv, rng: f"sum {inv.total.replace('.', ',')}", r"sum (?P<total>\d+,\d\d)"),
    # distractors: never entered
    "due": FieldFormat(lambda inv, rng: f"due {rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}", r"due \d\d/\d\d"),
    "po": FieldFormat(lambda inv, rng: f"po {rng.randint(1000, 9999)}", r"po \d{4}"),
    "tel": FieldFormat(lambda inv, rng: f"tel 555-{_digits(rng, 4)}", r"tel 555-\d{4}"),
    "tax": FieldFormat(lambda inv, rng: f"tax {cents_text(rng.randint(10, 4999))}", rf"tax {AMOUNT}"),
    "qty": FieldFormat(lambda inv, rng: f"qty {rng.randint(1, 9)}", r"qty \d"),
}


@dataclass(frozen=True)
class Layout:
    """A document layout: the fields in order (keys of FORMATS) joined by `sep`."""

    name: str
    sep: str
    fields: tuple[str, ...]

    def render(self, invoice: Invoice, rng: random.Random) -> str:
        return self.sep.join(FORMATS[f].render(invoice, rng) for f in self.fields)

    def parse(self, text: str) -> Invoice | None:
        """The canonical invoice a document of this layout shows, or None if it is not of this layout."""
        match = re.fullmatch(re.escape(self.sep).join(FORMATS[f].pattern for f in self.fields), text)
        if match is None:
            return None
        return Invoice(str(int(match["number"])), match["vendor"].lower(), canonical_total(match["total"]))


NAMED_LAYOUTS = (
    Layout("a", " | ", ("id:inv", "vendor:label", "total:label", "due")),
    Layout("b", " ", ("vendor:from", "id:no", "total:amount", "tel")),
    Layout("c", " ", ("id:hash", "vendor:ltd", "total:dollar", "po")),
    Layout("d", ", ", ("id:ref", "vendor:from", "tax", "total:label")),
    Layout("e", " | ", ("vendor:label", "total:sum", "id:inv")),
    Layout("f", ", ", ("vendor:ltd", "qty", "total:amount", "id:hash")),
    Layout("g", " ", ("total:dollar", "id:no", "vendor:label")),
    Layout("h", " | ", ("id:ref", "total:sum", "vendor:ltd", "due")),
)
# Never in train or test: new orders and combinations of the formats above.
HELDOUT_LAYOUTS = (
    Layout("x", " | ", ("total:label", "id:hash", "vendor:from", "po")),
    Layout("y", ", ", ("tax", "total:sum", "id:ref", "vendor:ltd")),
    Layout("z", " ", ("tel", "total:amount", "vendor:label", "id:no")),
)
LAYOUTS = {layout.name: layout for layout in NAMED_LAYOUTS + HELDOUT_LAYOUTS}
ID_FORMATS = ("id:inv", "id:no", "id:hash", "id:ref")
VENDOR_FORMATS = ("vendor:label", "vendor:from", "vendor:ltd")
TOTAL_FORMATS = ("total:label", "total:amount", "total:dollar", "total:sum")
DISTRACTORS = ("due", "po", "tel", "tax", "qty")
SEPARATORS = (" | ", ", ", " ")
_HELDOUT_FIELDS = {layout.fields for layout in HELDOUT_LAYOUTS}


def random_layout(rng: random.Random) -> Layout:
    """A train/test layout: one format for each of the three fields and up to two distractors, in any
    order, with any separator -- never the field sequence of a held-out layout (whatever its separator).
    Its name lists its fields, so that the same layout always has the same name."""
    while True:
        fields = [rng.choice(ID_FORMATS), rng.choice(VENDOR_FORMATS), rng.choice(TOTAL_FORMATS)]
        fields += rng.sample(DISTRACTORS, rng.randint(0, 2))
        rng.shuffle(fields)
        sep = rng.choice(SEPARATORS)
        if tuple(fields) not in _HELDOUT_FIELDS:
            return Layout(sep.join(fields), sep, tuple(fields))


def vendor_name(rng: random.Random, unlike: str = "", made_up_share: float = 0.0) -> str:
    """A vendor other than `unlike`: one of the 24 `VENDORS`, or with probability `made_up_share` a made-up
    name (`names.made_up`) that only copying from the document can get right."""
    while True:
        vendor = usual_or_made_up(rng, VENDORS, share=made_up_share)
        if vendor != unlike:
            return vendor


def random_invoice(rng: random.Random, number: int, made_up_share: float = 0.0) -> Invoice:
    """An invoice with number `number`: a vendor (made up with probability `made_up_share`) and a total
    whose cents are often round (so that the short format `42.5` / `42` shows up)."""
    cents = rng.choice((0, 0, 50, rng.randint(1, 99)))
    return Invoice(str(number), vendor_name(rng, made_up_share=made_up_share),
                   cents_text(100 * rng.randint(1, 499) + cents))


def parse(text: str) -> Invoice | None:
    """The invoice a document of any layout shows (named, held-out or random), or None: each field found
    by its label, wherever it stands."""
    found: dict[str, str] = {}
    for key in ID_FORMATS + VENDOR_FORMATS + TOTAL_FORMATS:
        match = re.search(rf"(?:^|(?<=[ ,|])){FORMATS[key].pattern}(?=$|[ ,|])", text)
        if match is not None:
            found.update({name: value for name, value in match.groupdict().items() if value is not None})
    if set(found) != {"number", "vendor", "total"}:
        return None
    return Invoice(str(int(found["number"])), found["vendor"].lower(), canonical_total(found["total"]))
