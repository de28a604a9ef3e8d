"""The runs API behind the web app's Runs page: what is under `--runs DIR`, read straight from the files.

    GET /api/runs                          every run: name, recipe, stages, status, key metrics
    GET /api/runs/{name}                   one run, with each stage's final metrics and last evals
    GET /api/runs/{name}/metrics?since=N   metrics.jsonl records from byte N on, for live curves
    GET /runs/{name}/report.html           the run's files, read-only: report.html, plots/*.png, and
    GET /runs/{name}/plots/{file}          summary.json, recipe.toml, metrics.jsonl, timings.json

A run is a directory directly under the runs directory holding a recipe.toml, summary.json or
metrics.jsonl. Nothing here imports the runner or the recipe code (this layer sits below them): the
files are the interface, and a file that does not parse makes a note on the run instead of an error,
so one broken run never hides the others.

Status, from the files alone (the runner writes summary.json only when every stage has finished):

    finished   summary.json says "complete", and metrics.jsonl was not written after it
    running    otherwise, when metrics.jsonl or a stage's result.json changed in the last RECENT_S seconds
    crashed    otherwise: the run stopped before finishing (a crash, Ctrl-C, a killed machine), or its
               summary.json does not parse

A run resumed with `alphaloop resume` after finishing shows as running again while it writes.
"""

from __future__ import annotations

import json
import os
import re
import time
import tomllib
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from alphaloop.serve.errors import APIError

router = APIRouter()
RECENT_S = 120.0            # a run whose log changed this recently is taken to be still running
MAX_RECORDS = 20_000        # records per metrics answer: a client polls again for the rest
RUN_FILES = {"report.html", "summary.json", "recipe.toml", "metrics.jsonl", "timings.json"}
_STAGE_DIR = re.compile(r"^(\d+)-(.+)$")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _read_json(path: Path, notes: list[str]) -> Any:
    """A JSON file's content, or None with a note saying why not (missing files make no note)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{path.name} is unreadable ({type(exc).__name__}: {exc})")
        return None


def _read_recipe(path: Path, notes: list[str]) -> dict:
    try:
        recipe = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        notes.append(f"recipe.toml is unreadable ({type(exc).__name__}: {exc})")
        return {}
    return recipe


def is_run(path: Path) -> bool:
    try:
        return path.is_dir() and any((path / f).is_file() for f in ("recipe.toml", "summary.json", "metrics.jsonl"))
    except (OSError, ValueError):   # a name the filesystem refuses (too long, ...) names no run: a 404, not a 500
        return False


def _resolved(path: Path) -> Path | None:
    """`path.resolve()`, None for a path the filesystem refuses (a NUL byte, a name too long)."""
    try:
        return path.resolve()
    except (OSError, ValueError):
        return None


def _is_file(path: Path) -> bool:
    """`path.is_file()`, False for a path the filesystem refuses (a name too long, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def run_dirs(root: Path | None) -> list[Path]:
    """The runs under `root`, most recently changed first."""
    if root is None or not root.is_dir():
        return []
    found = [p for p in root.iterdir() if not p.name.startswith(".") and is_run(p)]
    return sorted(found, key=lambda p: -(_latest_write(p) or 0.0))


def _stage_results(run: Path, notes: list[str]) -> dict[int, dict]:
    """stages/<i>-<name>/result.json by stage index (a stage has one once it has finished)."""
    results: dict[int, dict] = {}
    stages = run / "stages"
    if not stages.is_dir():
        return results
    for child in stages.iterdir():
        match = _STAGE_DIR.match(child.name)
        if match and (child / "result.json").is_file():
            result = _read_json(child / "result.json", notes)
            results[int(match.group(1))] = (result if isinstance(result, dict) else {}) | {"_dir": match.group(2)}
    return results


def _latest_write(run: Path) -> float | None:
    """When the run last wrote its log or a stage result: how the running/crashed rule tells them apart."""
    times = [_mtime(run / "metrics.jsonl"), _mtime(run / "summary.json")]
    stages = run / "stages"
    if stages.is_dir():
        times += [_mtime(child / "result.json") for child in stages.iterdir()]
    times = [t for t in times if t is not None]
    return max(times) if times else _mtime(run)


def run_status(run: Path, summary: Any, now: float | None = None) -> str:
    """finished / running / crashed, by the rule in the module's docstring."""
    now = time.time() if now is None else now
    summary_time, metrics_time = _mtime(run / "summary.json"), _mtime(run / "metrics.jsonl")
    complete = isinstance(summary, dict) and summary.get("status") == "complete"
    # the runner closes metrics.jsonl before it writes summary.json: a log newer than that is a resumed run
    if complete and (metrics_time is None or summary_time is None or metrics_time <= summary_time + 1.0):
        return "finished"
    if summary_time is not None and not isinstance(summary, dict):
        return "crashed"   # summary.json is written once, atomically: one that does not parse was damaged
    latest = _latest_write(run)
    return "running" if latest is not None and now - latest < RECENT_S else "crashed"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _stages(recipe: dict, summary: dict | None, results: dict[int, dict]) -> list[dict]:
    """Each stage's index, name, kind, status (complete / pending) and final metrics, from summary.json
    when the run finished, else from the recipe and the stages' result.json files."""
    if summary and isinstance(summary.get("stages"), list):
        return [{"index": s.get("index", i), "name": s.get("name"), "kind": s.get("kind"),
                 "status": s.get("status"), "steps": s.get("steps"),
                 "final": {k: v for k, v in (s.get("final") or {}).items() if _number(v)}}
                for i, s in enumerate(summary["stages"]) if isinstance(s, dict)]
    planned = recipe.get("stages") if isinstance(recipe.get("stages"), list) else []
    count = max([len(planned)] + [i + 1 for i in results])
    stages = []
    for i in range(count):
        spec = planned[i] if i < len(planned) and isinstance(planned[i], dict) else {}
        result = results.get(i)
        name = spec.get("name") or spec.get("kind") or (result or {}).get("_dir")
        stages.append({"index": i, "name": name, "kind": spec.get("kind") or (result or {}).get("kind"),
                       "status": "complete" if result is not None else "pending",
                       "steps": (result or {}).get("steps", spec.get("steps")),
                       "final": {k: v for k, v in ((result or {}).get("final") or {}).items() if _number(v)}})
    return stages


def _key_metrics(stages: list[dict], evals: list) -> dict[str, float]:
    """The numbers a list of runs shows: the last finished stage's final metrics, and the last eval's."""
    key: dict[str, float] = {}
    for stage in reversed(stages):
        if stage["final"]:
            key.update({f"{stage['name']}.{k}": v for k, v in stage["final"].items()})
            break
    for ev in reversed(evals):
        if isinstance(ev, dict) and isinstance(ev.get("metrics"), dict):
            label = "eval." + ".".join(str(ev[k]) for k in ("split", "decoder") if ev.get(k))
            key.update({f"{label}.{k}": v for k, v in ev["metrics"].items() if _number(v) and k != "n"})
            break
    return key


def describe(run: Path, detail: bool = False) -> dict:
    """What the web app shows of a run; never raises for a broken or partial run (notes say what is wrong)."""
    notes: list[str] = []
    summary = _read_json(run / "summary.json", notes)
    if summary is not None and not isinstance(summary, dict):
        notes.append("summary.json does not hold a JSON object")
        summary = None
    recipe = _read_recipe(run / "recipe.toml", notes)
    results = _stage_results(run, notes)
    stages = _stages(recipe, summary, results)
    evals = (summary or {}).get("evals") or [e for i in sorted(results) for e in results[i].get("evals") or []]
    evals = evals if isinstance(evals, list) else []
    env = recipe.get("env") if isinstance(recipe.get("env"), dict) else {}
    latest = _latest_write(run)
    answer = {"name": run.name, "recipe": (summary or {}).get("name") or recipe.get("name"),
              "env": (summary or {}).get("env") or env.get("name"), "status": run_status(run, summary),
              "stages": stages, "key_metrics": _key_metrics(stages, evals), "updated": latest,
              "report": f"/runs/{run.name}/report.html" if (run / "report.html").is_file() else None,
              "notes": notes}
    if detail:
        plots = run / "plots"
        answer["plots"] = sorted(f"/runs/{run.name}/plots/{p.name}" for p in plots.glob("*.png")) if plots.is_dir() \
            else []
        answer["evals"] = evals[-50:]
        answer["metrics_bytes"] = (run / "metrics.jsonl").stat().st_size if (run / "metrics.jsonl").is_file() else 0
    return answer


def _root(request: Request) -> Path | None:
    return request.app.state.runs_dir


def find_run(request: Request, name: str) -> Path:
    """The run called `name`: one of the listed runs or a 404, so no name can reach outside the runs directory."""
    root = _root(request)
    if root is None:
        raise APIError(404, "no runs directory is served; start the server with --runs DIR", param="name",
                       code="run_not_found")
    run = root / name
    if name in ("", ".", "..") or "/" in name or "\\" in name or name.startswith(".") or not is_run(run):
        raise APIError(404, f"no run {name!r} under {root}", param="name", code="run_not_found")
    return run


@router.get("/api/runs")
async def list_runs(request: Request) -> dict:
    """Every run under the runs directory, most recently changed first."""
    root = _root(request)
    return {"object": "list", "root": None if root is None else str(root), "recent_s": RECENT_S,
            "data": [describe(run) for run in run_dirs(root)]}


@router.get("/api/runs/{name}")
async def get_run(name: str, request: Request) -> dict:
    """One run, with its stages' final metrics, its last evals and its plots."""
    return describe(find_run(request, name), detail=True)


@router.get("/api/runs/{name}/metrics")
async def run_metrics(name: str, request: Request, since: int = Query(0, ge=0), file: str | None = None) -> dict:
    """metrics.jsonl's complete lines from byte `since` on, and the offset to ask from next time.

    `file` identifies the log (it changes when a resumed run rewrites it); when it differs from the one
    the client read, or `since` is past the end, the answer starts again from byte 0 with `reset: true`.
    A line still being written is left for the next poll; a line that does not parse is skipped and counted."""
    path = find_run(request, name) / "metrics.jsonl"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {"object": "list", "data": [], "next": 0, "file": None, "reset": since > 0, "skipped": 0}
    ident = f"{stat.st_ino}-{stat.st_dev}"
    reset = (file is not None and file != ident) or since > stat.st_size
    start = 0 if reset else since
    records, skipped, offset = [], 0, start
    with open(path, "rb") as handle:
        handle.seek(start)
        for line in handle:
            if not line.endswith(b"\n") or len(records) >= MAX_RECORDS:
                break
            offset += len(line)
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                skipped += 1
                continue
            if isinstance(record, dict):
                records.append(record)
    return {"object": "list", "data": records, "next": offset, "file": ident, "reset": reset, "skipped": skipped,
            "more": offset < stat.st_size and len(records) >= MAX_RECORDS}


_MEDIA = {".html": "text/html; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
          ".json": "application/json", ".jsonl": "text/plain; charset=utf-8", ".toml": "text/plain; charset=utf-8"}


@router.get("/runs/{name}/{path:path}")
async def run_file(name: str, path: str, request: Request) -> FileResponse:
    """A run's report, its plots and its JSON/TOML records, read-only; any other path is a 404, and a path
    that leaves the run directory (.., a link pointing out) is a 404 too."""
    run = find_run(request, name)
    parts = path.split("/")
    allowed = (len(parts) == 1 and path in RUN_FILES) or (
        len(parts) == 2 and parts[0] == "plots" and parts[1] not in ("", ".", "..") and not parts[1].startswith("."))
    target = _resolved(run / path) if allowed else None
    if target is None or not target.is_relative_to(run.resolve()) or not _is_file(target) or "\\" in path \
            or os.sep != "/" and os.sep in path:
        raise APIError(404, f"no file {path!r} in run {name!r} (served: {', '.join(sorted(RUN_FILES))}, plots/*)",
                       param="path")
    return FileResponse(target, media_type=_MEDIA.get(target.suffix, "application/octet-stream"),
                        headers={"Cache-Control": "no-cache"})
