"""The human report card: run directory -> `report.html` (one self-contained file) + the terminal table.

The page reads only what the runner wrote (summary.json, metrics.jsonl, timings.json,
recipe.toml) and never fails on a run that crashed part-way: whatever is missing or unreadable
is named at the top of the page instead. Figures are embedded as base64 so the page can be
mailed or attached as one file; the same PNGs are also left in `plots/`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from alphaloop.errors import UserError
from alphaloop.report.games import accuracy_against_time, game_progress, progress_figure
from alphaloop.report.plots import curve_figure, elo_figure, img_tag, learning_curve_figure, slug
from alphaloop.report.tables import eval_table_set, format_value
from alphaloop.runlog import read_metrics

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #d6dae2; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .6em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e3e6ec; padding: .3em .8em; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } td.num { text-align: right; }
.meta span { margin-right: 1.6em; } .note { color: #6a7180; font-size: 88%; }
.ci { color: #8a909c; font-size: 85%; }
.status { padding: .1em .5em; border-radius: .3em; color: white; font-weight: 600; }
.complete { background: #2e8b57; } .other { background: #c0392b; }
.missing { background: #fff4e0; border-left: 4px solid #e6a23c; padding: .5em 1em; }
img { max-width: 100%; display: block; margin: .8em 0; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 85%; }
"""


def decoder_note(decoder: str) -> str:
    """What a decoder's number means, so nobody compares an oracle bound with a deployable method."""
    name, _, k = str(decoder).partition("@")
    if name == "oracle":
        return "upper bound: uses the answer key"
    if name == "pass":
        return f"correct if any of {k} samples is (unbiased estimator, Chen et al. 2021); needs a verifier"
    if name.startswith("pass^"):
        return f"all {name[5:]} samples correct (reliability, Yao et al. 2024)"
    if name == "maj":
        return f"majority vote over {k} samples (Wang et al. 2023)"
    if name == "greedy":
        return "temperature 0"
    if name == "sample":
        return "one sample, averaged over all drawn samples"
    if name in ("best", "best-value"):
        return f"best of {k} by the policy's own value head (PPO critic)"
    if name == "judge":
        return f"best of {k} as rated by the policy judging its own candidates"
    if name == "retry":
        return f"retry until the value head accepts a try (V >= 0.5), at most {k} tries"
    return ""


def eval_tables(summary: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(final evals, evals during training), keeping only well-formed records; the Elo ladder's
    ratings (split "elo") are shown in the Elo section instead."""
    records = [r for r in summary.get("evals") or []
               if isinstance(r, dict) and isinstance(r.get("metrics"), dict) and r.get("split") != "elo"]
    final = [r for r in records if r.get("step") is None]
    during = [r for r in records if r.get("step") is not None]
    return final, during


def format_report_card(summary: dict[str, Any]) -> Group:
    """The eval tables for the terminal: final evals, or the last in-training evals if none exist;
    one table per kind of record (`tables.py`), each narrow enough for an 80-column terminal."""
    final, during = eval_tables(summary)
    records = final
    if not records:  # a run stopped before its eval stage: show the latest in-training numbers
        latest: dict[tuple, dict] = {}
        for r in during:
            latest[(r.get("stage"), r.get("policy"), r.get("split"), r.get("decoder"))] = r
        records = list(latest.values())
    title = " ".join(str(x) for x in (summary.get("name"), summary.get("status")) if x) or "evaluation"
    notes = {d: decoder_note(d) for d in {str(r.get("decoder", "")) for r in records}
             if d.partition("@")[0] in ("pass", "oracle")}
    caption = [f"{d}: {note}" for d, note in sorted(notes.items())]
    if not records:
        caption.append("no evaluations in this run")
    elif not final:
        caption.append("latest evaluations during training (the run has no final eval stage yet)")
    sets = eval_table_set(records, ["policy", "split", "decoder"])
    if not sets:
        return Group(Text(title), *[Text(line) for line in caption])
    rendered = []
    for i, found in enumerate(sets):
        heading = title if i == 0 else found.title
        if i == 0 and len(sets) > 1:
            heading = f"{title}: {found.title}"
        table = Table(title=Text(heading), title_justify="left", caption_justify="left")
        for j, column in enumerate(found.header):
            table.add_column(Text(column), justify="right" if j in found.numeric else "left")
        for row in found.rows:
            table.add_row(*[Text(c.text + (f"\n{c.note}" if c.note else "")) for c in row])
        if i == len(sets) - 1:
            table.caption = "\n".join(caption) or None
        rendered.append(table)
    return Group(*rendered)


# ---------------------------------------------------------------- reading the run directory


def _read_json(path: Path, missing: list[str], what: str) -> Any:
    if not path.is_file():
        missing.append(f"{path.name} not found: {what}")
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        missing.append(f"{path.name} is not valid JSON ({exc}): {what}")
        return None


# ---------------------------------------------------------------- HTML pieces

e = html.escape


def _table(header: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """Cells arrive already escaped (some carry markup such as the interval spans)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    num = ' class="num"'
    body = "".join("<tr>" + "".join(f"<td{num if i in numeric else ''}>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _eval_html(records: list[dict], with_step: bool) -> str:
    fixed = (["stage", "step"] if with_step else []) + ["policy", "split", "decoder"]
    if not with_step and len({r.get("stage") for r in records}) > 1:
        fixed = ["stage", *fixed]
    if with_step:
        records = sorted(records, key=lambda r: (str(r.get("stage")), r.get("step") or 0))
    parts = []
    tables = eval_table_set(records, fixed, decoder_note)
    for found in tables:
        rows = [[e(c.text) + (f'<br><span class="{"note" if i == len(fixed) - 1 else "ci"}">{e(c.note)}</span>'
                              if c.note else "") for i, c in enumerate(row)] for row in found.rows]
        heading = f"<h3>{e(found.title)}</h3>" if len(tables) > 1 else ""
        parts.append(heading + _table([e(h) for h in found.header], rows, numeric=found.numeric))
    return "".join(parts)


def _templates_html(records: list[dict]) -> str:
    """Agent evals per task template: one row per (policy, split, decoder, template)."""
    rows = []
    for r in records:
        for template, m in sorted(r["by_template"].items()):
            if not isinstance(m, dict):
                continue
            passk = next((f"{key}: {100 * v:.1f}%" for key, v in m.items() if key.startswith("pass^")), "")
            rows.append([e(str(r.get(key, ""))) for key in ("policy", "split", "decoder")] + [
                e(str(template)), e(str(m.get("tasks", ""))), f"{100 * float(m.get('success', 0)):.1f}%",
                e(passk), f"{100 * float(m.get('harm_rate', 0)):.1f}%"])
    return _table(["policy", "split", "decoder", "template", "tasks", "success", "pass^k", "harm"], rows,
                  numeric={4, 5, 6, 7})


def _transcripts_html(records: list[dict]) -> str:
    """One collapsible block per (policy, split, decoder), each transcript in a <pre>."""
    out = []
    for r in records:
        items = [t for t in r["transcripts"] if isinstance(t, dict)]
        body = "".join(f"<p><b>{'success' if t.get('success') else 'failure'}</b>"
                       f"{' -- harm ' + e(str(t.get('harm'))) if t.get('harm') else ''}</p>"
                       f"<pre>{e(str(t.get('text', '')))}</pre>" for t in items)
        title = f"{r.get('policy', '')} / {r.get('split', '')} / {r.get('decoder', '')}"
        out.append(f"<details><summary>{e(title)} ({len(items)})</summary>{body}</details>")
    return "".join(out)


def _stages_html(stages: list[dict], timings: dict[str, Any]) -> str:
    rows = []
    for s in stages:
        final = s.get("final") if isinstance(s.get("final"), dict) else {}
        wall = s.get("wall_time_s", timings.get(str(s.get("name"))))
        rows.append([e(str(s.get("index", ""))), e(str(s.get("name", ""))), e(str(s.get("kind", ""))),
                     e(str(s.get("status", ""))), e(format_value("steps", s.get("steps", ""))),
                     e(_duration(wall)), e(", ".join(f"{k} {format_value(k, v)}" for k, v in final.items()))])
    return _table(["#", "name", "kind", "status", "steps", "wall time", "final"], rows, numeric={0, 4, 5})


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)} min {secs:.0f} s" if minutes >= 1 else f"{secs:.1f} s"


def _params(n: Any) -> str:
    if not isinstance(n, int):
        return str(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


# ---------------------------------------------------------------- the page


def build_report(run_dir: Path) -> Path:
    """Write run_dir/plots/*.png and run_dir/report.html; return the page's path.

    Never raises for a partial run: missing or unreadable files are listed on the page."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory (expected a run directory)")
    missing: list[str] = []
    summary = _read_json(run_dir / "summary.json", missing, "the run has not finished a stage, or crashed")
    if summary is not None and not isinstance(summary, dict):
        missing.append("summary.json does not hold a JSON object")
        summary = None
    summary = summary or {}
    timings = _read_json(run_dir / "timings.json", [], "") or {}
    timings = timings if isinstance(timings, dict) else {}
    metrics = read_metrics(run_dir / "metrics.jsonl", missing)
    plots = run_dir / "plots"

    name = str(summary.get("name") or run_dir.name)
    status = str(summary.get("status") or "unknown")
    parts = [f"<h1>{e(name)}</h1>",
             f'<p class="meta"><span class="status {"complete" if status == "complete" else "other"}">'
             f"{e(status)}</span>"]
    wall = summary.get("wall_time_s")
    if wall is None and timings:
        wall = sum(v for v in timings.values() if isinstance(v, int | float))
    policy = summary.get("policy") if isinstance(summary.get("policy"), dict) else {}
    size = _params(policy["num_parameters"]) if "num_parameters" in policy else None
    for label, value in (("env", summary.get("env")), ("seed", summary.get("seed")),
                         ("threads", summary.get("threads")), ("policy", policy.get("kind")),
                         ("parameters", size),
                         ("wall time", _duration(wall) or None)):
        if value is not None:
            parts.append(f"<span><b>{e(label)}</b> {e(str(value))}</span>")
    parts.append("</p>")
    if missing:
        parts.append('<div class="missing"><b>Incomplete run directory</b><ul>'
                     + "".join(f"<li>{e(m)}</li>" for m in missing) + "</ul></div>")

    stages = [s for s in summary.get("stages") or [] if isinstance(s, dict)]
    parts.append("<h2>Stages</h2>")
    parts.append(_stages_html(stages, timings) if stages else '<p class="note">no stages recorded</p>')

    final, during = eval_tables(summary)
    parts.append("<h2>Evaluation</h2>")
    parts.append(_eval_html(final, with_step=False) if final else
                 '<p class="note">no final evaluation (the run has no eval stage, or has not reached it)</p>')
    if during:
        parts.append(f"<details><summary>evaluations during training ({len(during)})</summary>"
                     f"{_eval_html(during, with_step=True)}</details>")

    templated = [r for r in final if isinstance(r.get("by_template"), dict) and r["by_template"]]
    if templated:
        parts.append("<h2>Per task template</h2><p class=\"note\">the split's figures again for each kind of "
                     "task: one template that is never learnt is not hidden by the others</p>")
        parts.append(_templates_html(templated))

    shown = [r for r in final if r.get("transcripts")]
    if shown:
        parts.append("<h2>Agent transcripts</h2><p class=\"note\">the first successes and failures of each "
                     "policy and split (the decoder's first sample of each task)</p>")
        parts.append(_transcripts_html(shown))

    parts.append("<h2>Learning curves</h2>")
    by_stage: dict[tuple[int, str], list[dict]] = {}
    for r in metrics:
        index = r.get("stage_index") if isinstance(r.get("stage_index"), int) else -1
        by_stage.setdefault((index, str(r.get("stage", "run"))), []).append(r)
    drawn = 0
    for (index, stage), records in sorted(by_stage.items()):
        path = learning_curve_figure(stage, records, plots / f"curves-{index}-{slug(stage)}.png")
        if path is not None:
            parts.append(f"<h3>{e(stage)}</h3>{img_tag(path, f'learning curves of stage {stage}')}")
            drawn += 1
    if not drawn:
        parts.append('<p class="note">no training metrics logged</p>')

    progress = game_progress(name, summary, metrics)
    path = None if progress.empty() else progress_figure([progress], plots / "game-progress.png", name)
    if path is not None:
        parts.append("<h2>Game progress</h2><p class=\"note\">good-move rate on solver-labelled positions (in-training "
                     "evals) and ladder Elo of the training snapshots, against wall time and self-play games</p>")
        parts.append(img_tag(path, "good-move rate and Elo against wall time and self-play games"))

    curves = summary.get("curves") if isinstance(summary.get("curves"), dict) else {}
    timed = accuracy_against_time(metrics)
    if timed:  # from metrics.jsonl: summary.json holds no clock readings
        curves = curves | {"test_accuracy_vs_seconds": timed}
    for curve_name, points in sorted(curves.items(), key=lambda kv: (kv[0] != "test_time_compute", kv[0])):
        title = "Test-time compute" if curve_name == "test_time_compute" else curve_name.replace("_", " ")
        parts.append(f"<h2>{e(title)}</h2>")
        path = curve_figure(curve_name, points if isinstance(points, list) else [],
                            plots / f"curve-{slug(curve_name)}.png")
        if path is None:
            parts.append(f'<p class="note">curve {e(curve_name)} has no plottable points</p>')
            continue
        if curve_name == "test_time_compute":
            parts.append('<p class="note">accuracy as more samples per problem are drawn '
                         "(log2 axis), one line per policy and decoder</p>")
        parts.append(img_tag(path, title))

    fits = [f for f in summary.get("fits") or [] if isinstance(f, dict)]
    if fits:
        parts.append("<h2>Over-optimisation fits</h2><p class=\"note\">Gao et al. (2022): gold gain over the start "
                     "against d = sqrt(KL), best-of-n R(d) = d (alpha - beta d), RL R(d) = d (alpha - beta log d); "
                     "d* is where the fitted gold peaks</p>")
        parts.append(_table(["curve", "form", "d from", "alpha", "beta", "R^2", "fitted d*", "measured d at peak",
                             "gold at start", "measured gold peak"],
                            [[e(str(f.get(k, ""))) if not isinstance(f.get(k), float) else f"{f[k]:.3g}"
                              for k in ("curve", "form", "d", "alpha", "beta", "r2", "d_peak", "d_peak_measured",
                                        "gold_start", "gold_peak_measured")] for f in fits], {3, 4, 5, 6, 7, 8, 9}))

    elo = summary.get("elo")
    if isinstance(elo, dict) and elo:
        numeric = {str(k): float(v) for k, v in elo.items() if isinstance(v, int | float)}
        intervals = {}  # the ladder's bootstrap intervals, from its "elo" eval records
        for r in summary.get("evals") or []:
            m = r.get("metrics") if isinstance(r, dict) else None
            if isinstance(m, dict) and r.get("split") == "elo" and "elo_low" in m and "elo_high" in m:
                player = str(r.get("policy")) + ("" if r.get("decoder") in (None, "-") else f":{r['decoder']}")
                intervals[player] = f"{m['elo_low']:.0f} to {m['elo_high']:.0f}"
        rows = [[e(k), f"{v:.0f}", e(intervals.get(k, ""))] for k, v in sorted(numeric.items(), key=lambda kv: -kv[1])]
        rows += [[e(str(k)), e(str(v)), ""] for k, v in elo.items() if str(k) not in numeric]
        parts.append("<h2>Elo</h2>")
        parts.append(_table(["player", "Elo", "95% interval"] if intervals else ["player", "Elo"],
                            [r if intervals else r[:2] for r in rows], {1}))
        path = elo_figure(elo, plots / "elo.png")
        if path is not None:
            parts.append(img_tag(path, "Elo ladder"))

    recipe = run_dir / "recipe.toml"
    if recipe.is_file():
        parts.append("<h2>Recipe</h2><details><summary>recipe.toml (resolved)</summary>"
                     f"<pre>{e(recipe.read_text(errors='replace'))}</pre></details>")

    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(name)} - alphaloop report</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    out = run_dir / "report.html"
    tmp = run_dir / ".report.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


__all__ = ["build_report", "format_report_card", "decoder_note", "format_value"]
