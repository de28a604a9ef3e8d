"""The execution sandbox: ordinary code runs, and every attack ends in a clear error in the result --
a refused action, a timeout, a non-zero exit with a message -- fast, with the host left untouched.
Each attack runs in both modes: "rlimits" always, "bubblewrap" where bwrap works on this machine."""

import os
import resource
import socket
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from alphaloop.envs import sandbox
from alphaloop.envs.sandbox import run_python, sandbox_mode

HAS_BUBBLEWRAP = sandbox_mode().startswith("bubblewrap")
MODES = ["rlimits", pytest.param("bubblewrap", marks=pytest.mark.skipif(
    not HAS_BUBBLEWRAP, reason="bwrap is not on PATH or cannot create a sandbox on this machine"))]
FAST_S = 5.0   # every attack must be over well within this


def run(source: str, mode: str, **limits):
    started = time.monotonic()
    result = run_python(source, mode=mode, **limits)
    elapsed = time.monotonic() - started
    assert elapsed < FAST_S, f"took {elapsed:.1f}s"
    assert result.mode == f"{mode}+audit"
    return result


def refused(result, what: str) -> None:
    """The guard refused `what`: reported in `violation`, and the unhandled refusal ended the run with a message."""
    assert result.violation is not None and what in result.violation, result
    assert result.returncode not in (0, None) and "SandboxViolation: sandbox refused" in result.stderr, result


def processes_with(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (read from /proc, no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline:
                found.append(cmdline)
    return found


# --- ordinary code ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_normal_code_runs(mode):
    source = ("import math, json, collections\n"
              "def square(x):\n    return x * x\n"
              "print(sum(square(i) for i in range(10)), math.factorial(5), json.dumps({'a': [1, 2]}))\n"
              "import os\nprint(os.listdir('.'))\n"                          # a fresh, empty working directory
              "open('notes.txt', 'w').write('kept here')\nprint(open('notes.txt').read())\n")
    result = run(source, mode)
    assert (result.returncode, result.timed_out, result.output_truncated, result.violation) == (0, False, False, None)
    assert result.stdout == '285 120 {"a": [1, 2]}\n[]\nkept here\n' and result.stderr == ""


@pytest.mark.parametrize("mode", MODES)
def test_exceptions_exit_non_zero_with_a_traceback(mode):
    result = run("def f(x):\n    return 1 / x\n\nprint('before')\nf(0)\n", mode)
    assert result.returncode == 1 and result.violation is None and result.stdout == "before\n"
    assert 'File "<solution>", line 5' in result.stderr and "return 1 / x" in result.stderr
    assert result.stderr.strip().endswith("ZeroDivisionError: division by zero")
    syntax = run("def f(:\n", mode)
    assert syntax.returncode == 1 and "SyntaxError" in syntax.stderr
    assert run("import sys\nsys.exit(3)\n", mode).returncode == 3


# --- attacks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_reading_etc_passwd_is_refused(mode):
    result = run("print(open('/etc/passwd').read())", mode)
    refused(result, "open '/etc/passwd' for reading")
    assert "root:" not in result.stdout
    caught = run("try:\n    open('/etc/passwd')\nexcept OSError as e:\n    print('caught', type(e).__name__)\n", mode)
    assert caught.stdout == "caught SandboxViolation\n" and caught.violation and caught.returncode == 0


@pytest.mark.parametrize("mode", MODES)
def test_the_projects_own_files_are_out_of_reach(mode):
    own = os.path.abspath(sandbox.__file__)
    result = run(f"print(open({own!r}).read())", mode)
    refused(result, f"open {own!r} for reading")
    assert "execution sandbox" not in result.stdout
    listing = run(f"import os\nprint(os.listdir({os.path.dirname(own)!r}))", mode)
    refused(listing, "os.listdir")
    assert "sandbox.py" not in listing.stdout


@pytest.mark.parametrize("mode", MODES)
def test_writing_outside_the_working_directory_is_refused(mode):
    target = os.path.join(tempfile.gettempdir(), f"alphaloop-sandbox-test-{uuid.uuid4().hex}")
    refused(run(f"open({target!r}, 'w').write('escaped')", mode), "for writing")
    refused(run(f"import os\nopen('x', 'w').write('escaped')\nos.rename('x', {target!r})", mode), "os.rename")
    refused(run("import os\nos.symlink('/etc/passwd', 'p')", mode), "os.symlink")
    assert not os.path.exists(target)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("address", ["127.0.0.1", "1.1.1.1"])
def test_sockets_are_refused(mode, address):
    with socket.socket() as server:   # a live local server: nothing may reach it
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1] if address == "127.0.0.1" else 80
        result = run(f"import socket\ns = socket.socket()\ns.connect(({address!r}, {port}))\nprint('connected')", mode)
        refused(result, "socket.")
        assert "connected" not in result.stdout
        with pytest.raises(BlockingIOError):
            server.accept()
    refused(run("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)", mode), "socket.")


@pytest.mark.parametrize("mode", MODES)
def test_fork_bombs_are_refused(mode):
    refused(run("import os\nwhile True:\n    os.fork()\n", mode), "os.fork")
    refused(run("import multiprocessing as mp\nwhile True:\n    mp.Process(target=print).start()\n", mode), "os.fork")
    spawned = run("import multiprocessing as mp\nmp.get_context('spawn').Process(target=print).start()\n", mode)
    assert spawned.violation is not None and spawned.returncode != 0


@pytest.mark.parametrize("mode", MODES)
def test_an_infinite_loop_ends_by_the_timeout(mode):
    started = time.monotonic()
    result = run("while True:\n    pass\n", mode, timeout_s=1.0)
    assert result.timed_out and result.returncode is None and result.violation is None
    assert time.monotonic() - started < 3.5   # 1 s, plus start-up and the kill on a busy machine


@pytest.mark.parametrize("mode", MODES)
def test_allocating_10_gib_fails_with_memory_error(mode):
    result = run("b = bytearray(10 * 2**30)\nprint('allocated')", mode)
    assert result.returncode == 1 and "MemoryError" in result.stderr and "allocated" not in result.stdout
    assert not result.timed_out


@pytest.mark.parametrize("mode", MODES)
def test_printing_100_mb_is_cut_off(mode):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB
    for source in ("print('x' * 100_000_000)", "import sys\nwhile True:\n    sys.stdout.write('y' * 10_000)\n"):
        result = run(source, mode, max_output_bytes=50_000)
        assert result.output_truncated and result.returncode is None and len(result.stdout) == 50_000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000   # no 100 MB in the host


@pytest.mark.parametrize("mode", MODES)
def test_ctypes_and_native_code_are_refused(mode):
    refused(run("import ctypes\nctypes.string_at(0, 8)\n", mode), "import ctypes")
    refused(run("__import__('_ctypes')", mode), "import _ctypes")
    loader = ("import importlib.util\nspec = importlib.util.find_spec('_ctypes')\n"
              "importlib.util.module_from_spec(spec)\n")
    refused(run(loader, mode), "import _ctypes")
    refused(run("import sys\nsys.settrace(lambda *a: None)\n", mode), "sys.settrace")


@pytest.mark.parametrize("mode", MODES)
def test_nothing_is_left_running(mode):
    marker = f"{60 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"   # `sleep 61.123456`: unique
    attempts = {"Popen": f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\n",
                "system": f"import os\nos.system('sleep {marker} &')\n",
                "daemon": ("import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                           f"        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"),
                "spawn": f"import os\nos.posix_spawn('/bin/sleep', ['sleep', '{marker}'], {{}})\n",
                "thread": "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n"}
    for name, source in attempts.items():
        result = run(source, mode, timeout_s=1.0)
        if name == "thread":   # no new process, but the run must still end by the timeout
            assert result.timed_out, result
        else:
            assert result.violation is not None and result.returncode != 0, (name, result)
    deadline = time.monotonic() + 1.0
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == []


@pytest.mark.parametrize("mode", MODES)
def test_limits_the_code_cannot_lift(mode):
    refused(run("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))\n", mode), "resource.setrlimit")
    refused(run("import os\nos.kill(1, 9)\n", mode), "os.kill")
    big = run("open('big', 'wb').write(b'x' * 2**25)", mode)   # over RLIMIT_FSIZE
    assert big.returncode == 1 and "File too large" in big.stderr
    cut = run("import os\nos.closerange(0, 64)\nopen('/etc/passwd')\n", mode)   # blinding the reports stops it
    assert cut.violation is not None and cut.returncode != 0


@pytest.mark.parametrize("mode", MODES)
def test_working_directories_are_removed(mode):
    result = run("import os\nprint(os.getcwd())\nopen('f', 'w').write('x')\nos.mkdir('d')", mode)
    workdir = Path(result.stdout.strip())
    assert workdir.parent == Path(tempfile.gettempdir()) and workdir.name.startswith("alphaloop-sandbox-")
    assert not workdir.exists()


def test_modes_are_reported():
    assert sandbox_mode() in ("bubblewrap+audit", "rlimits+audit")
    assert run_python("pass", mode="auto").mode == sandbox_mode()


@pytest.mark.parametrize("argument, value", [
    ("source", b"print(1)"), ("timeout_s", 0), ("timeout_s", -1.0), ("timeout_s", True), ("memory_mb", 8),
    ("memory_mb", 256.0), ("max_output_bytes", 0), ("max_processes", 0), ("mode", "docker"),
])
def test_bad_arguments_are_clear_errors(argument, value):
    kwargs = {"source": "pass", argument: value}
    source = kwargs.pop("source")
    with pytest.raises(ValueError, match=f"^{argument}: "):
        run_python(source, **kwargs)


def test_forcing_bubblewrap_where_it_does_not_work(monkeypatch):
    monkeypatch.setattr(sandbox, "_bubblewrap_works", lambda: False)
    with pytest.raises(ValueError, match="mode='bubblewrap'"):
        run_python("pass", mode="bubblewrap")
    assert sandbox_mode() == "rlimits+audit" and run_python("pass").mode == "rlimits+audit"


@pytest.mark.skipif(not HAS_BUBBLEWRAP, reason="bwrap is not on PATH or cannot create a sandbox on this machine")
def test_bubblewrap_alone_hides_the_host(tmp_path):
    """Without the guard, the namespaces themselves show no /etc, no project and no network."""
    import subprocess

    argv = sandbox._bubblewrap_argv(str(tmp_path))
    project = os.path.dirname(os.path.abspath(sandbox.__file__))
    for command in (["cat", "/etc/passwd"], ["ls", project]):
        done = subprocess.run(argv + command, capture_output=True, timeout=10)
        assert done.returncode != 0 and b"No such file" in done.stderr, done
    probe = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\nexcept OSError as e:\n" \
            "    print('no network', e.errno)\n"
    done = subprocess.run(argv + [sandbox._interpreter(), "-I", "-S", "-c", probe], capture_output=True, timeout=10)
    assert done.stdout.startswith(b"no network"), done
