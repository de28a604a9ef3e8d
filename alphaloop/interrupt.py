"""Ctrl-C that is never lost.

Python turns SIGINT into KeyboardInterrupt in whatever code runs at that moment -- and when that is
an object's `__del__` (a garbage collection during an import, say) the exception is printed and
dropped, and the program carries on as if nothing had been asked. `install()` keeps a note of the
request as well, and the training loops call `check()` at every step boundary, so an interrupt
swallowed that way still stops the run within one step.
"""

from __future__ import annotations

import signal
import threading

_requested = False


def _handler(signum, frame) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def install() -> None:
    """Use the remembering handler for SIGINT (main thread only; a no-op elsewhere)."""
    global _requested
    _requested = False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _handler)


def requested() -> bool:
    return _requested


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed since `install()`, even if it was swallowed."""
    if _requested:
        raise KeyboardInterrupt
