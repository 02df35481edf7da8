"""memory.py: asked to keep freed memory, glibc's malloc serves a step's temporaries again without page faults."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chargen.memory import glibc, keep_freed_memory

# One "step": four 8 MiB temporaries made, written and freed, as a training step's activations are.
# glibc's own thresholds move with what a process allocated before, so the child first pins the
# setting that returns every large block at once (mmap threshold 128 KiB, the default's start),
# measures, then calls keep_freed_memory() and measures again. Printed for each: the median over
# seven steps (after two that warm up) of the minor page faults per page written; the median, as
# the kernel may reclaim or fault a page now and then whatever malloc does.
STEPS = """
import ctypes, json, resource, statistics, torch
from chargen.memory import M_MMAP_THRESHOLD, keep_freed_memory
def step():
    ts = [torch.empty(2 ** 21).fill_(1.0) for _ in range(4)]
    del ts
def faults_per_page():
    step(), step()
    pages, per_page = 4 * 2 ** 21 * 4 / 4096, []
    for _ in range(7):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        per_page.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / pages)
    return statistics.median(per_page)
assert ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1
returned = faults_per_page()
kept = keep_freed_memory()
print(json.dumps({"returned": returned, "kept": kept, "kept_faults": faults_per_page()}))
"""


def faults_per_page() -> dict:
    out = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not glibc(), reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults():
    """With large blocks returned at once, every step faults on nearly every page it writes;
    after keep_freed_memory() the same steps reuse their memory (next to no faults)."""
    found = faults_per_page()
    assert found["kept"] is True
    assert found["returned"] > 0.5
    assert found["kept_faults"] < 0.1


def test_elsewhere_nothing_is_done(monkeypatch):
    """Where the C library is not glibc (macOS, Windows, musl), nothing is asked and False comes back."""
    import chargen.memory as memory

    monkeypatch.setattr(memory.os, "confstr", lambda name: "musl", raising=False)
    assert memory.glibc() is False and keep_freed_memory() is False
