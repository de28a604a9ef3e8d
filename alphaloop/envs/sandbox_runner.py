"""The program that runs inside the sandbox, before the untrusted code: limits and the audit-hook guard.

Kept apart from `sandbox.py` (the host side: starting, feeding, reading and killing the run) because
it is a different program with its own rules: it runs in the child, with -I -S, so it may use only
the standard library, and it must capture everything it relies on before the code can touch it.
"""

REPORT_LOST = 125   # the runner's exit code when the code closed the guard's stderr

# The runner: `python -I -S -B -u -c RUNNER workdir cpu_s memory_bytes processes file_bytes open_files core_bytes
# marker`, the code on stdin. It reads the code, sets the limits, installs the guard and runs the code as __main__.
# The guard only uses objects captured when it was installed (C functions, not module attributes the code
# could replace), and no builtins by name, so patching `os` or `builtins` cannot blind it.
RUNNER = r'''
import os, sys

def _install(workdir, limits, marker):
    import posix, resource, stat, _posixsubprocess
    for name, value in zip(("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE",
                            "RLIMIT_CORE"), limits):
        kind = getattr(resource, name)
        hard = resource.getrlimit(kind)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))
    is_, bytes_, int_, str_, os_error = isinstance, bytes, int, str, OSError
    lstat, stat_, readlink, getcwd, fspath = posix.lstat, posix.stat, posix.readlink, posix.getcwd, posix.fspath
    write, exit_, report = posix.write, posix._exit, posix.dup(2)
    is_reg, is_dir, is_link = stat.S_ISREG, stat.S_ISDIR, stat.S_ISLNK
    encoding = sys.getfilesystemencoding()
    writes = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    refused = frozenset(("os.system", "subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.exec",
                         "os.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "os.symlink", "os.link",
                         "resource.setrlimit", "resource.prlimit", "gc.get_objects", "gc.get_referrers",
                         "gc.get_referents", "sys.settrace", "sys.setprofile", "code.__new__", "webbrowser.open",
                         "_posixsubprocess.fork_exec"))
    prefixes = ("socket.", "ctypes.", "syslog.")
    modules = frozenset(("ctypes", "_ctypes", "_posixsubprocess", "_posixshmem", "cffi", "_cffi_backend"))
    private = ("_test", "_xx", "_interp")     # test helpers that poke memory; sub-interpreters (no guard there)
    path_events = {"os.mkdir": 1, "os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.chmod": 1, "os.chown": 1,
                   "os.utime": 1, "os.truncate": 1, "os.setxattr": 1, "os.removexattr": 1}

    class SandboxViolation(PermissionError):
        """An action the sandbox refuses."""

    SandboxViolation.__qualname__ = "SandboxViolation"   # tracebacks name it plainly

    def refuse(what):
        try:
            write(report, (marker + what + "\n").encode("utf-8", "replace"))
        except os_error:
            exit_(REPORT_LOST)   # the report channel is gone: stop rather than go on unobserved
        raise SandboxViolation("sandbox refused " + what)

    def resolve(path):
        """The absolute path `path` names, symbolic links followed (os.path.realpath, from captured parts)."""
        path = fspath(path)
        if is_(path, bytes_):
            path = path.decode(encoding, "surrogateescape")
        if not path.startswith("/"):
            path = getcwd() + "/" + path
        todo, done, hops = path.split("/")[::-1], [], 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                done = done[:-1]
                continue
            here = "/" + "/".join(done + [part])
            try:
                link = is_link(lstat(here).st_mode) and hops < 40
            except os_error:
                link = False
            if link:
                hops += 1
                target = readlink(here)
                done = [] if target.startswith("/") else done
                todo.extend(target.split("/")[::-1])
            else:
                done.append(part)
        return "/" + "/".join(done)

    def within(path, roots):
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return True
        return False

    home = (resolve(workdir),)
    python = tuple(resolve(p) for p in sys.path if p)
    readable = home + python
    devices = frozenset(("/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"))

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if is_(path, int_):
                return   # an already open descriptor
            full = resolve(path)
            writing = flags & writes != 0 or (is_(mode, str_) and ("w" in mode or "a" in mode or "x" in mode
                                                                   or "+" in mode))
            if full in devices:
                return
            try:
                kind = stat_(full).st_mode
            except os_error:
                kind = None
            if kind is not None and not (is_reg(kind) or (is_dir(kind) and within(full, home))):
                refuse(f"open {full!r} (not a regular file)")
            if within(full, home) or (not writing and within(full, python)):
                return
            refuse(f"open {full!r} for {'writing' if writing else 'reading'}")
        elif event in refused or event.startswith(prefixes):
            refuse(event)
        elif event == "import":
            name, filename = args[0], args[1]
            top = name.partition(".")[0]
            if top in modules or top.startswith(private):
                refuse(f"import {name}")
            if filename is not None and not within(resolve(filename), python):
                refuse(f"loading native code from {filename!r}")
        elif event in path_events:
            for path in args[: path_events[event]]:
                if is_(path, int_) and event == "os.truncate":
                    continue   # a descriptor open for writing, hence in the working directory
                if is_(path, int_) or not within(resolve(path), home):
                    refuse(f"{event} {path!r}")
        elif event in ("os.listdir", "os.scandir"):
            path = "." if args[0] is None else args[0]
            if not is_(path, int_) and not within(resolve(path), readable):
                refuse(f"{event} {resolve(path)!r}")

    def no_fork_exec(*args, **kwargs):
        refuse("_posixsubprocess.fork_exec")

    _posixsubprocess.fork_exec = no_fork_exec   # multiprocessing's spawn starts processes without an audit event
    sys.addaudithook(hook)

_source = sys.stdin.buffer.read().decode("utf-8", "replace")
_install(sys.argv[1], [int(v) for v in sys.argv[2:8]], sys.argv[8])
del _install

def _print_exception(exc, tb):   # traceback is imported only when needed: it costs a third of the start-up
    import linecache, traceback
    linecache.cache["<solution>"] = (len(_source), None, _source.splitlines(True), "<solution>")
    traceback.print_exception(type(exc), exc, tb)

try:
    _code = compile(_source, "<solution>", "exec")
except (SyntaxError, ValueError) as _exc:
    _print_exception(_exc, None)
    sys.exit(1)
try:
    exec(_code, {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit:
    raise
except BaseException as _exc:
    _print_exception(_exc, _exc.__traceback__.tb_next)   # the runner's own frame left out
    sys.exit(1)
'''.replace("REPORT_LOST", str(REPORT_LOST))
