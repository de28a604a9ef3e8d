"""Find an env class by name: built-ins, installed plugins, or a `module:Class` / `file.py:Class`.

A spec is resolved in this order:
1. a built-in name (`arithmetic`);
2. an entry point name in the group `alphaloop.envs`, which is how an installed package plugs
   in a task: `[project.entry-points."alphaloop.envs"] mytask = "mypkg.tasks:MyTask"`;
3. `package.module:Class` (imported) or `path/to/file.py:Class` (loaded from the file, relative
   to the working directory), so a new task is one file and no install.
A built-in name wins over an entry point of the same name, so a plugin cannot silently
replace a built-in env.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from alphaloop.envs.base import TextEnv

ENTRY_POINT_GROUP = "alphaloop.envs"
BUILTINS: dict[str, str] = {"arithmetic": "alphaloop.envs.arithmetic:ArithmeticEnv",
                            "assistant": "alphaloop.envs.assistant:AssistantEnv",
                            "code": "alphaloop.envs.code:CodeEnv",
                            "invoices": "alphaloop.envs.invoices:InvoicesEnv",
                            "shell": "alphaloop.envs.shell:ShellEnv"}


def make_env(spec: str, split: str = "train", seed: int | None = None, **knobs: Any) -> TextEnv:
    """An env instance from a spec (see the module docstring); bad knobs raise ValueError."""
    return env_class(spec)(split=split, seed=seed, **knobs)


def env_class(spec: str) -> type[TextEnv]:
    """The TextEnv subclass a spec names. Unknown names raise ValueError listing what exists."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"env spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    if spec in BUILTINS:
        return _load_target(BUILTINS[spec], spec)
    plugins = _entry_points()
    if spec in plugins:
        try:
            obj = plugins[spec].load()
        except Exception as exc:
            raise ImportError(f"env {spec!r}: its entry point {plugins[spec].value!r} "
                              f"failed to load: {exc}") from exc
        return _check_class(obj, spec)
    if ":" in spec:
        return _load_target(spec, spec)
    available = sorted(set(BUILTINS) | set(plugins))
    raise ValueError(f"unknown env {spec!r}: available envs are {', '.join(available)}; "
                     "or give 'package.module:Class' or 'path/to/file.py:Class'")


def list_envs() -> dict[str, type[TextEnv]]:
    """Built-in and entry-point envs by name (a plugin that fails to load is skipped)."""
    found: dict[str, type[TextEnv]] = {}
    for name in BUILTINS:
        found[name] = env_class(name)
    for name in sorted(_entry_points()):
        if name not in found:
            try:
                found[name] = env_class(name)
            except (ImportError, ValueError, TypeError):
                continue
    return found


def describe_env(cls: type) -> list[tuple[str, str, Any, str]]:
    """(knob, type, default, description) for each of the env's knobs, for `alphaloop envs`."""
    config = getattr(cls, "Config", None)
    if config is None or not hasattr(config, "model_fields"):
        return []
    rows = []
    for knob, info in config.model_fields.items():
        kind = getattr(info.annotation, "__name__", None) or str(info.annotation)
        rows.append((knob, kind, info.get_default(call_default_factory=True), info.description or ""))
    return rows


# --- resolution -------------------------------------------------------------------------------
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_target(target: str, spec: str) -> type[TextEnv]:
    location, _, attr = target.rpartition(":")
    if not location or not attr:
        raise ValueError(f"env spec {spec!r}: expected 'package.module:Class' or 'path/to/file.py:Class'")
    module = _load_file(location, spec) if _is_path(location) else _import(location, spec)
    obj = getattr(module, attr, None)
    if obj is None:
        classes = sorted(n for n, v in vars(module).items() if isinstance(v, type) and issubclass(v, TextEnv)
                         and v is not TextEnv)
        raise ValueError(f"env spec {spec!r}: {location} has no attribute {attr!r} "
                         f"(TextEnv classes there: {', '.join(classes) or 'none'})")
    return _check_class(obj, spec)


def _is_path(location: str) -> bool:
    return location.endswith(".py") or "/" in location or "\\" in location


def _import(module_name: str, spec: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ImportError(f"env spec {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    except Exception as exc:  # the module's own code failed: a syntax error, a failing import, ...
        raise ImportError(f"env spec {spec!r}: module {module_name!r} failed to import: {_failure(exc)}") from exc


def _failure(exc: Exception) -> str:
    """One line for an exception raised by a user's env module (with the line of a syntax error)."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def _load_file(location: str, spec: str):
    path = Path(location).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"env spec {spec!r}: file not found: {path}")
    # One module per file path, registered in sys.modules so dataclasses and pickling work and a
    # second make_env reuses the already-loaded classes.
    name = f"alphaloop_env_{path.stem}_{hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"env spec {spec!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ImportError(f"env spec {spec!r}: {path} failed to load: {_failure(exc)}") from exc
    return module


def _check_class(obj: Any, spec: str) -> type[TextEnv]:
    if not (isinstance(obj, type) and issubclass(obj, TextEnv)):
        raise TypeError(f"env spec {spec!r} names {obj!r}, which is not a subclass of alphaloop.envs.TextEnv")
    return obj
