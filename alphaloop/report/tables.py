"""Eval records as tables a person reads: one table per kind of record, the key figure first, one
number format (every rate a percentage), and only the columns that kind has.

    text        policy  split     decoder  accuracy [95% CI]  pass@k / maj@k ...   n
    matches     policy  opponent  decoder  win [95% CI]       draw  loss           games
    positions   policy  set       decoder  good move          perfect move         positions
    lines       policy  lost as first  lost as second  lines     (tic-tac-toe against perfect play)

Both the terminal card (`html.format_report_card`) and the HTML page render these, so a 13-column
table never collapses to `po… sp…` at 80 columns, and `25.0%` never sits beside `0.75`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from alphaloop.evals.metrics import wilson_interval
from alphaloop.report.plots import is_rate

# Rates that `is_rate` does not know by name but that are fractions in [0, 1].
FRACTIONS = {"loss_rate", "score", "win_low", "win_high", "good_move_rate", "perfect_move_rate", "gold_accuracy",
             "kept_precision"}


def format_value(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if (is_rate(key) or key in FRACTIONS) and 0.0 <= value <= 1.0:
            return f"{value:.1%}"
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def wilson_note(decoder: str, metrics: dict[str, Any]) -> str:
    """95% Wilson interval of the accuracy, when it is a count of solved problems out of n (greedy,
    maj@k, oracle@k); pass@k and sample accuracies are averages of per-problem estimates instead."""
    acc, n = metrics.get("accuracy"), metrics.get("n")
    if decoder.startswith(("pass", "sample")):
        return ""
    if not (isinstance(acc, int | float) and isinstance(n, int) and n > 0 and 0 <= acc <= 1):
        return ""
    hits = acc * n
    if abs(hits - round(hits)) > 1e-6 * n:  # an average of estimates (pass@k, sample), not a count
        return ""
    low, high = wilson_interval(round(hits), n)
    return f"{low:.1%}-{high:.1%}"


@dataclass
class Cell:
    text: str
    note: str = ""        # a smaller second part: an interval, or what a decoder means


@dataclass
class EvalTable:
    title: str
    header: list[str]
    numeric: set[int]
    rows: list[list[Cell]] = field(default_factory=list)


def _metric_order(key: str) -> tuple:
    """accuracy first, then pass@/maj@ by k, the rest alphabetically, the sample count n last."""
    match = re.match(r"^(\D+?)[@^](\d+)$", key)
    if key == "accuracy":
        return (0, "", 0)
    if key == "n":
        return (3, "", 0)
    return (1, match.group(1), int(match.group(2))) if match else (2, key, 0)


def family(record: dict[str, Any]) -> str:
    split = str(record.get("split", ""))
    if split.startswith("vs-"):
        return "matches"
    if split.startswith("positions-"):
        return "positions"
    if split == "perfect-lines":
        return "lines"
    if split == "test-pairs":
        return "pairs"
    return "text"


def _value(metrics: dict[str, Any], key: str) -> str:
    return format_value(key, metrics[key]) if key in metrics else ""


def _text_table(records: list[dict], lead: list[str], note) -> EvalTable:
    columns = sorted({k for r in records for k in r["metrics"]}, key=_metric_order)
    table = EvalTable("evaluation", lead + columns, set(range(len(lead), len(lead) + len(columns))))
    for r in records:
        decoder = str(r.get("decoder", ""))
        row = [Cell(str(r.get(k, ""))) for k in lead]
        row[-1].note = note(decoder)
        for c in columns:
            interval = wilson_note(decoder, r["metrics"]) if c == "accuracy" else ""
            row.append(Cell(_value(r["metrics"], c), f"[{interval}]" if interval else ""))
        table.rows.append(row)
    return table


def _match_table(records: list[dict], lead: list[str]) -> EvalTable:
    header = [*lead[:-2], "opponent", "decoder", "win", "draw", "loss", "games"]
    table = EvalTable("matches (both colours)", header, set(range(len(lead), len(header))))
    for r in records:
        m = r["metrics"]
        low, high = m.get("win_low"), m.get("win_high")
        interval = f"[{low:.1%}-{high:.1%}]" if isinstance(low, float) and isinstance(high, float) else ""
        cells = [Cell(str(r.get(k, ""))) for k in lead[:-2]]
        cells += [Cell(str(r.get("split", ""))[3:]), Cell(str(r.get("decoder", ""))),
                  Cell(_value(m, "win_rate"), interval), Cell(_value(m, "draw_rate")),
                  Cell(_value(m, "loss_rate")), Cell(_value(m, "n"))]
        table.rows.append(cells)
    return table


def _position_table(records: list[dict], lead: list[str]) -> EvalTable:
    header = [*lead[:-2], "set", "decoder", "good move", "perfect move", "positions"]
    table = EvalTable("solver-labelled positions", header, set(range(len(lead), len(header))))
    for r in records:
        m = r["metrics"]
        cells = [Cell(str(r.get(k, ""))) for k in lead[:-2]]
        cells += [Cell(str(r.get("split", ""))[len("positions-"):]), Cell(str(r.get("decoder", ""))),
                  Cell(_value(m, "good_move_rate")), Cell(_value(m, "perfect_move_rate")), Cell(_value(m, "n"))]
        table.rows.append(cells)
    return table


def _lines_table(records: list[dict], lead: list[str]) -> EvalTable:
    header = [*lead[:-2], "lost as first", "lost as second", "lines"]
    table = EvalTable("tic-tac-toe lines against perfect play (raw net)", header,
                      set(range(len(lead) - 2, len(header))))
    for r in records:
        m = r["metrics"]
        cells = [Cell(str(r.get(k, ""))) for k in lead[:-2]]
        cells += [Cell(_value(m, "lost_lines_as_first")), Cell(_value(m, "lost_lines_as_second")),
                  Cell(_value(m, "lines"))]
        table.rows.append(cells)
    return table


def _pairs_table(records: list[dict], lead: list[str]) -> EvalTable:
    header = [*lead[:-2], "pair accuracy", "gold accuracy", "reward gap", "pairs"]
    table = EvalTable("reward models on held-out preference pairs", header, set(range(len(lead) - 2, len(header))))
    for r in records:
        m = r["metrics"]
        cells = [Cell(str(r.get(k, ""))) for k in lead[:-2]]
        cells += [Cell(_value(m, "accuracy")), Cell(_value(m, "gold_accuracy")), Cell(_value(m, "gap")),
                  Cell(_value(m, "n"))]
        table.rows.append(cells)
    return table


def eval_table_set(records: list[dict], lead: list[str], note=lambda decoder: "") -> list[EvalTable]:
    """One table per family present in `records`, in a fixed order. `lead` are the identifying
    columns (e.g. ["policy", "split", "decoder"], with "stage" / "step" in front where needed)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(family(r), []).append(r)
    tables = []
    if "text" in groups:
        tables.append(_text_table(groups["text"], lead, note))
    if "matches" in groups:
        tables.append(_match_table(groups["matches"], lead))
    if "positions" in groups:
        tables.append(_position_table(groups["positions"], lead))
    if "lines" in groups:
        tables.append(_lines_table(groups["lines"], lead))
    if "pairs" in groups:
        tables.append(_pairs_table(groups["pairs"], lead))
    return tables
