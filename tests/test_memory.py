"""memory.py: asked to keep freed memory, glibc's malloc serves a step's temporaries again without page faults."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chargen.memory import glibc, keep_freed_memory

# One "step": four 8 MiB temporaries made, written and freed, as a training step's activations are.
# Printed: the median over seven steps (after two that warm up) of the minor page faults per page written;
# the median, as the kernel may reclaim or fault a page now and then whatever malloc does.
STEPS = """
import json, resource, statistics, sys, torch
from chargen.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
def step():
    ts = [torch.empty(2 ** 21).fill_(1.0) for _ in range(4)]
    del ts
step(), step()
pages, per_page = 4 * 2 ** 21 * 4 / 4096, []
for _ in range(7):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    per_page.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / pages)
print(json.dumps({"kept": kept, "faults_per_page": statistics.median(per_page)}))
"""


def faults_per_page(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not glibc(), reason="glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults():
    """Left as it is, glibc returns a step's freed temporaries and the next step faults on nearly every page;
    after keep_freed_memory() the next step reuses them (next to no faults)."""
    as_is, kept = faults_per_page("as-is"), faults_per_page("keep")
    assert kept["kept"] is True
    assert as_is["faults_per_page"] > 0.5
    assert kept["faults_per_page"] < 0.1


def test_elsewhere_nothing_is_done(monkeypatch):
    """Where the C library is not glibc (macOS, Windows, musl), nothing is asked and False comes back."""
    import chargen.memory as memory

    monkeypatch.setattr(memory.os, "confstr", lambda name: "musl", raising=False)
    assert memory.glibc() is False and keep_freed_memory() is False
