"""How this process's C allocator treats the large temporaries of a training step.

glibc's malloc takes large blocks straight from the kernel and gives freed memory at the top of
its heap back to it. A training step makes and frees megabytes of temporaries (activations,
gradients, gate buffers) every step, so left as it is, every step pays for fresh pages: over a
thousand page faults a step at the default CPU shape, each a trip into the kernel and a page
zeroed. Asked to keep what it freed, the process reuses the same memory step after step.
"""
from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters, as glibc's malloc.h numbers them
HEAP_BLOCK_BYTES = 32 * 2 ** 20  # blocks up to this size come from the heap: glibc's most on a 64-bit system
KEEP_BYTES = 2 ** 30  # freed memory at the top of the heap is kept up to this much


def glibc() -> bool:
    """True where the C library is glibc (most Linux systems); not on macOS, Windows or musl."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or no such name (macOS, musl)
        return False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for the next allocations instead of returning it to
    the kernel; True if it took. A process-wide setting: it changes when memory goes back to the
    system, never what a program computes. Elsewhere nothing is done and False is returned."""
    if not glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES)) & bool(mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
