"""Run untrusted Python source in a separate, limited process: the execution sandbox of the `code` env.

An agent that writes code must have it run, and whatever it writes -- an infinite loop, a fork
bomb, `open('/etc/passwd')`, a socket, 100 MB of output -- must end in a clear result, never in a
hung, flooded or damaged host. `run_python` gives two layers:

1. Isolation. Mode "bubblewrap" (when `bwrap` is on PATH and works here; probed once): new
   namespaces for everything (no network, an own pid namespace, so nothing outlives the run), a
   root file system holding only /usr, /lib* and the Python installation read-only plus the
   empty working directory, and no capabilities when started as root. Nothing of the project or
   of /etc is visible. Mode "rlimits" otherwise: a plain child process in its own session.
2. Limits and a guard, in both modes, set up by a small runner before the code runs: rlimits
   (CPU seconds, address space, processes, file size, open files, no core files) with hard = soft
   so the code cannot raise them, and a `sys.addaudithook` guard that refuses reading outside the
   working directory and the Python installation, writing outside the working directory, sockets,
   starting processes (`subprocess`, `os.system`, `os.fork`, `os.exec*`, `os.posix_spawn`,
   multiprocessing), signals to other processes, `ctypes` and loading native code. A refused
   action raises `SandboxViolation` (a PermissionError naming it) in the code and is reported on
   stderr with a fixed marker, so `SandboxResult.violation` is filled even if the code catches it.

The host side adds a wall-clock timeout, reads stdout and stderr up to a hard byte cap (the run is
killed when it overflows, so 100 MB of output never reaches host memory), kills the whole process
group at the end and removes the working directory.

CPython's audit hooks are not a security boundary against a determined attacker (an interpreter
bug or native code goes around them), and as root RLIMIT_NPROC is not enforced: in "rlimits" mode
the guard stops accidents and the ordinary attacks of tests/envs/test_sandbox.py, not an
adversary. Use a machine with bubblewrap for that; `sandbox_mode()` says which one is in use.
"""

from __future__ import annotations

import functools
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from alphaloop.envs.sandbox_runner import REPORT_LOST, RUNNER

MODES = ("auto", "bubblewrap", "rlimits")
VIOLATION_MARKER = "@@sandbox-violation@@ "   # precedes each refused action the guard reports on stderr
FILE_SIZE_BYTES = 16 * 2**20                   # RLIMIT_FSIZE: the largest file the code may write
OPEN_FILES = 64                                # RLIMIT_NOFILE
CHUNK = 65536


@dataclass
class SandboxResult:
    """What one run did. `returncode` is None when the sandbox killed the run (timeout, output cap)."""

    stdout: str
    stderr: str                    # the guard's reports removed (see `violation`)
    returncode: int | None
    timed_out: bool                # the wall-clock timeout or the CPU limit ended it
    output_truncated: bool         # stdout or stderr passed max_output_bytes: the run was stopped there
    violation: str | None          # the first action the guard refused, e.g. "open '/etc/passwd' for reading"
    mode: str                      # "bubblewrap+audit" or "rlimits+audit"




def run_python(source: str, *, timeout_s: float = 2.0, memory_mb: int = 256, max_output_bytes: int = 64_000,
               max_processes: int = 16, mode: str = "auto") -> SandboxResult:
    """Run `source` as a Python program in the sandbox (see the module docstring) and say what happened.

    Never raises for anything the code does; raises ValueError for a bad argument, naming it (and for
    mode="bubblewrap" where bubblewrap does not work)."""
    _check_args(source, timeout_s, memory_mb, max_output_bytes, max_processes, mode)
    bubblewrap = mode == "bubblewrap" or (mode == "auto" and _bubblewrap_works())
    if mode == "bubblewrap" and not _bubblewrap_works():
        raise ValueError("mode='bubblewrap': bwrap is not on PATH or cannot create a sandbox here; "
                         "use mode='auto' or mode='rlimits'")
    workdir = tempfile.mkdtemp(prefix="alphaloop-sandbox-")
    try:
        limits = [math.ceil(timeout_s), memory_mb * 2**20, max_processes, FILE_SIZE_BYTES, OPEN_FILES, 0]
        argv = [_interpreter(), "-I", "-S", "-B", "-u", "-c", RUNNER, workdir, *map(str, limits), VIOLATION_MARKER]
        if bubblewrap:
            argv = _bubblewrap_argv(workdir) + argv
        name = "bubblewrap+audit" if bubblewrap else "rlimits+audit"
        return _execute(argv, source, workdir, timeout_s, max_output_bytes, name, bubblewrap)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sandbox_mode() -> str:
    """The mode `run_python(mode="auto")` uses on this machine: "bubblewrap+audit" or "rlimits+audit"."""
    return "bubblewrap+audit" if _bubblewrap_works() else "rlimits+audit"


# --- the child process ----------------------------------------------------------------------------------
def _interpreter() -> str:
    """The base interpreter (not a virtual environment's, which lives in the project): with -I -S it
    needs nothing but its own installation."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _environment(workdir: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir}


def _python_roots() -> list[str]:
    """Directories of the Python installation the sandbox mounts read-only (those outside /usr)."""
    roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)}
    binary = os.path.dirname(_interpreter())
    if not any(binary == r or binary.startswith(r + os.sep) for r in roots):
        roots.add(binary)
    return sorted(r for r in roots if r != "/usr" and not r.startswith("/usr/"))


def _bubblewrap_argv(workdir: str) -> list[str]:
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]   # root in the sandbox must not keep root's powers
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    for root in _python_roots():
        argv += ["--ro-bind", root, root]
    return argv + ["--proc", "/proc", "--dev", "/dev", "--bind", workdir, workdir, "--chdir", workdir,
                   "--remount-ro", "/"]


@functools.cache
def _bubblewrap_works() -> bool:
    """Whether bubblewrap can run the interpreter here (probed once per process)."""
    if shutil.which("bwrap") is None:
        return False
    workdir = tempfile.mkdtemp(prefix="alphaloop-sandbox-probe-")
    try:
        done = subprocess.run(_bubblewrap_argv(workdir) + [_interpreter(), "-I", "-S", "-c", "print('ok')"],
                              capture_output=True, timeout=20, env=_environment(workdir))
        return done.returncode == 0 and done.stdout.strip() == b"ok"
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _execute(argv: list[str], source: str, workdir: str, timeout_s: float, cap: int, mode: str,
             bubblewrap: bool) -> SandboxResult:
    """Start the run, feed it the source, read its output up to `cap` bytes a stream until it ends or the
    deadline passes, then kill its process group."""
    deadline = time.monotonic() + timeout_s
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=workdir, env=_environment(workdir), start_new_session=True)
    except OSError as exc:
        return SandboxResult("", f"sandbox: cannot start {argv[0]}: {exc}", None, False, False, None, mode)
    out, err = bytearray(), bytearray()
    buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    pending = memoryview(source.encode("utf-8", "replace"))
    timed_out = truncated = False
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        stdin = proc.stdin.fileno()
        os.set_blocking(stdin, False)
        selector.register(stdin, selectors.EVENT_WRITE)
        while selector.get_map() and not truncated:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            for key, _ in selector.select(left):
                if key.fd == stdin:
                    try:
                        pending = pending[os.write(stdin, pending[:CHUNK]):]
                    except BlockingIOError:
                        continue
                    except OSError:         # the run exited without reading it all
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer = buffers[key.fd]
                room = cap - len(buffer)
                buffer += chunk[:room]
                if len(chunk) > room:
                    truncated = True   # stop reading and kill it: the rest is never buffered
                    break
    if not (timed_out or truncated):   # the output ended; the process may still run (it closed its stdout)
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
    killed = proc.poll() is None
    _kill_group(proc)
    returncode = None if killed else proc.returncode
    if bubblewrap and returncode is not None and returncode > 128:
        returncode = 128 - returncode   # bwrap exits with 128 + N for a child killed by signal N
    # The CPU limit (hard = soft) ends the run with SIGKILL, sometimes SIGXCPU, often before this process
    # notices the wall-clock deadline on a loaded machine; nothing else here kills it that way that late.
    spent = time.monotonic() - (deadline - timeout_s)
    timed_out = (timed_out or returncode == -signal.SIGXCPU
                 or (returncode == -signal.SIGKILL and spent >= 0.5 * timeout_s))
    if timed_out:
        returncode = None   # the sandbox's limit ended it, whichever of its clocks ran out first
    stderr, violation = _split_violations(err.decode("utf-8", "replace"))
    if violation is None and returncode == REPORT_LOST:
        violation = "closing the sandbox's report channel"
    return SandboxResult(out.decode("utf-8", "replace"), stderr, returncode, timed_out, truncated, violation, mode)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the run's whole process group (it leads its own session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _split_violations(stderr: str) -> tuple[str, str | None]:
    """stderr without the guard's reports, and the first refused action they name. A report may follow
    text the code wrote without a newline, so it is looked for anywhere in a line."""
    kept, found = [], []
    for line in stderr.split("\n"):
        at = line.find(VIOLATION_MARKER)
        if at < 0:
            kept.append(line)
            continue
        found.append(line[at + len(VIOLATION_MARKER):])
        if at:
            kept.append(line[:at])
    return "\n".join(kept), found[0] if found else None


def _check_args(source: object, timeout_s: object, memory_mb: object, max_output_bytes: object,
                max_processes: object, mode: object) -> None:
    if not isinstance(source, str):
        raise ValueError(f"source: expected the Python code as a str, got {type(source).__name__}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s <= 600:
        raise ValueError(f"timeout_s: expected seconds in (0, 600], got {timeout_s!r}")
    for name, value, low in (("memory_mb", memory_mb, 64), ("max_output_bytes", max_output_bytes, 1),
                             ("max_processes", max_processes, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {value!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
