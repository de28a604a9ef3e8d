"""trim_heap gives freed heap pages back: the RSS of a fragmented heap falls."""

from __future__ import annotations

import subprocess
import sys

import pytest

from alphaloop import heap

FRAGMENT = """
import ctypes, torch
from alphaloop.heap import resident_bytes as rss, trim_heap
ctypes.CDLL("libc.so.6").mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD: tensors below 64 MiB come from the heap
tensors = [torch.ones(250_000 + 1000 * i) for i in range(400)]   # about 1 GiB in 1-2.6 MB pieces
kept = tensors[::20]                                             # a few stay: the heap cannot shrink from its top
del tensors
before = rss(); released = trim_heap(); after = rss()
print(released, before >> 20, after >> 20)
"""


@pytest.mark.skipif(heap._libc() is None, reason="malloc_trim is glibc's")
def test_trim_returns_a_fragmented_heaps_free_pages():
    out = subprocess.run([sys.executable, "-c", FRAGMENT], capture_output=True, text=True, check=True).stdout.split()
    released, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert released and before - after > 500, (before, after)   # most of the ~1 GiB freed comes back
