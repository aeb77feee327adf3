"""A steady-state heap for long-running torch work on CPU (glibc).

By default glibc hands every freed block above 128 KB back to the operating system
(``mmap``/``munmap``) and trims the heap top, so a tensor of a few megabytes is page-faulted
afresh on every call that allocates it. A long-running inference server or training loop
allocates the same sizes over and over; :func:`steady_allocator` tells glibc to keep and
reuse freed memory instead. Measured here: the run-to-run spread of a subnet's latency fell
from 16% to 3%, and a ``multiarch`` training step of ``resnet_like`` on digits from 420 to
280 ms (separate steps: 406 to 356 ms); see ``benchmarks/RESULTS.md``. The cost: the
process keeps its peak heap until it exits. It is process-wide; ``NAS_STEADY_ALLOCATOR=0``
turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_STEADY: bool | None = None
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def steady_allocator() -> bool:
    """Make glibc's allocator keep and reuse freed memory (no ``mmap`` for large blocks, no
    trimming), once per process. Returns whether it is in effect (``False`` off
    Linux/glibc or with ``NAS_STEADY_ALLOCATOR=0``)."""
    global _STEADY
    if _STEADY is None:
        _STEADY = False
        if os.environ.get("NAS_STEADY_ALLOCATOR", "1") != "0" and sys.platform == "linux":
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                ok = (libc.mallopt(_M_MMAP_MAX, 0) == 1
                      and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1)
                _STEADY = bool(ok)
            except (OSError, AttributeError):  # not glibc
                _STEADY = False
        log.debug("steady allocator: %s", _STEADY)
    return _STEADY
