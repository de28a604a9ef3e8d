"""The `shell` env's in-memory file system and the operations its tools run (`envs/shell.py`).

Paths are relative to the root (`""`), `/`-separated, without `..`; every operation that cannot run
raises `ToolError` with the message the agent reads.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from alphaloop.envs.agent import ToolError


@dataclass
class FileSystem:
    """Files (path -> text) and directories (paths; the root "" always exists)."""

    files: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)

    def parent(self, path: str) -> str:
        return path.rpartition("/")[0]

    def is_dir(self, path: str) -> bool:
        return path == "" or path in self.dirs


def clean_path(raw: str) -> str:
    """A path relative to the root; `..` and empty names are refused."""
    path = raw.strip().strip("/")
    while path.startswith("./"):
        path = path[2:]
    if path in ("", "."):
        return ""
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ToolError(f"bad path {raw!r}")
    return path


def existing_file(state: FileSystem, path: str) -> bool:
    if path in state.files:
        return True
    if state.is_dir(path):
        raise ToolError(f"{path or '/'} is a directory")
    raise ToolError(f"no such file: {path}")


def list_entries(state: FileSystem, path: str) -> str:
    folder, _, pattern = path.rpartition("/")
    if "*" in folder:
        raise ToolError(f"bad pattern {path!r}: * only in the last name")
    if "*" in pattern:
        if not state.is_dir(folder):
            raise ToolError(f"no such directory: {folder}")
        matches = [e for e in list_entries(state, folder).split() if fnmatch.fnmatchcase(e.rstrip("/"), pattern)]
        return " ".join((folder + "/" if folder else "") + e for e in matches) or "(none)"
    if not state.is_dir(path):
        raise ToolError(f"{path} is a file" if path in state.files else f"no such directory: {path}")
    prefix = path + "/" if path else ""
    entries = [p[len(prefix):] for p in state.files if p.startswith(prefix) and "/" not in p[len(prefix):]]
    entries += [d[len(prefix):] + "/" for d in state.dirs if d.startswith(prefix) and "/" not in d[len(prefix):]]
    return " ".join(sorted(entries)) or "(empty)"


def make_dir(state: FileSystem, path: str) -> str:
    if path == "" or path in state.dirs or path in state.files:
        raise ToolError(f"{path or '/'} exists")
    if not state.is_dir(state.parent(path)):
        raise ToolError(f"no such directory: {state.parent(path)}")
    state.dirs.add(path)
    return "ok"


def write_file(state: FileSystem, path: str, text: str) -> str:
    if not path or not text:
        raise ToolError("usage: write file text")
    if state.is_dir(path):
        raise ToolError(f"{path} is a directory")
    if not state.is_dir(state.parent(path)):
        raise ToolError(f"no such directory: {state.parent(path)}")
    state.files[path] = text
    return "ok"


def replace_once(state: FileSystem, path: str, old: str, new: str) -> str:
    existing_file(state, path)
    text = state.files[path]
    found = text.count(old)
    if found != 1:
        raise ToolError(f"'{old}' occurs {found} times in {path}: name exactly one place"
                        if found else f"no '{old}' in {path}")
    state.files[path] = text.replace(old, new)
    return "ok"


def move(state: FileSystem, source: str, target: str, keep: bool) -> str:
    existing_file(state, source)
    if state.is_dir(target):
        target = (target + "/" if target else "") + source.rpartition("/")[2]
    if not state.is_dir(state.parent(target)):
        raise ToolError(f"no such directory: {state.parent(target)}")
    if target == source:
        raise ToolError(f"{source} and {target} are the same file")
    state.files[target] = state.files[source] if keep else state.files.pop(source)
    return "ok"
