"""Atomic files and checksummed checkpoints.

A checkpoint is a directory written under a temporary name and renamed into place only when
every file (and finally `MANIFEST.json`, with a sha256 per file) is on disk: a `kill -9` at any
moment leaves either the previous checkpoint or the new one, never half of one. On load the
manifest is checked, so a truncated or corrupted file is detected and the previous good
checkpoint is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphaloop.errors import CorruptCheckpointError

MANIFEST = "MANIFEST.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (temp file, fsync, rename): never half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_atomic_dir(target: Path, fill: Callable[[Path], None], meta: dict | None = None) -> Path:
    """Create directory `target` atomically: `fill(tmp)` writes the files, then a manifest, then rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    fill(tmp)
    files = {}
    for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
        files[str(file.relative_to(tmp))] = {"sha256": sha256_file(file), "bytes": file.stat().st_size}
    manifest = {"files": files, "meta": meta or {}}
    with open(tmp / MANIFEST, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    if target.exists():  # replacing a finished checkpoint (re-run of the same step after resume)
        old = target.parent / f".old-{target.name}-{os.getpid()}"
        os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old)
    else:
        os.rename(tmp, target)
    _fsync_dir(target.parent)
    return target


def verify_dir(path: Path) -> dict:
    """Check every file against the manifest; return the manifest or raise CorruptCheckpointError."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise CorruptCheckpointError(f"checkpoint {path} has no {MANIFEST} (incomplete write)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptCheckpointError(f"checkpoint {path}: {MANIFEST} is not valid JSON ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("bytes"), int) and isinstance(e.get("sha256"), str)
            for e in files.values()):
        raise CorruptCheckpointError(f"checkpoint {path}: {MANIFEST} does not list files with bytes and sha256")
    for name, entry in files.items():
        file = path / name
        if not file.is_file():
            raise CorruptCheckpointError(f"checkpoint {path}: file {name} is missing")
        if file.stat().st_size != entry["bytes"]:
            raise CorruptCheckpointError(
                f"checkpoint {path}: file {name} has {file.stat().st_size} bytes, manifest says {entry['bytes']}"
            )
        if sha256_file(file) != entry["sha256"]:
            raise CorruptCheckpointError(f"checkpoint {path}: file {name} fails its sha256 check (corrupted)")
    return manifest


def verify_if_manifest(path: Path) -> dict | None:
    """`verify_dir(path)` if `path` holds a manifest, else None.

    Loaders call this so that a directory this package wrote atomically (a stage's final policy, a
    snapshot) is never used with a flipped bit or a cut-off file, while directories without one still
    load: a pretrained Hugging Face model, or a checkpoint's `policy/`, whose manifest sits one level up
    and was checked by `latest_good` when the checkpoint was picked."""
    path = Path(path)
    return verify_dir(path) if (path / MANIFEST).is_file() else None


class MissingCheckpointError(CorruptCheckpointError, FileNotFoundError):
    """A directory without a file a loader needs: a user error (exit code 2 in the CLI, not a
    traceback) that callers catching FileNotFoundError still catch."""


def unreadable(path: Path, name: str, exc: BaseException | str) -> CorruptCheckpointError:
    """The error for file `name` of directory `path` that exists but cannot be parsed, with the
    parser's reason on one line (parsers' messages can span lines or be very long)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if len(reason) > 200:
        reason = reason[:197] + "..."
    return CorruptCheckpointError(f"checkpoint {path}: file {name} cannot be read ({reason})")


def step_dirs(root: Path) -> list[Path]:
    """Checkpoint directories `step-NNNNNNN` under root, newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]), reverse=True)


def latest_good(root: Path, warn: Callable[[str], None] = print) -> Path | None:
    """The newest checkpoint under root that passes verification; corrupt ones are reported and skipped."""
    for path in step_dirs(root):
        try:
            verify_dir(path)
            return path
        except CorruptCheckpointError as exc:
            warn(f"warning: {exc}; falling back to the previous checkpoint")
    return None


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (disk stays bounded on long runs)."""
    for path in step_dirs(root)[keep:]:
        shutil.rmtree(path, ignore_errors=True)
