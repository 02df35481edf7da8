#!/usr/bin/env python3
"""On a quiet machine, does the adaptive thread count cost anything against a fixed count? Both
in one process, alternating, so that the differences between processes (where the kernel puts
the threads, the machine's speed from one minute to the next) fall on both alike.

    python benchmarks/threads_quiet.py [--pairs 8] [--steps 60] [--fixed 2] [--cell gru]

Each pair trains the default shape from scratch on corpora/shakespeare.txt for --steps steps
twice through `chargen.train`, once with `threads=0` (adaptive) and once with `threads=--fixed`,
in alternating order. The figure is each run's median step time (its first 3 steps left out),
read from the thread adapter's own timings, and the ratio adaptive / fixed pair by pair; the
thread counts the adaptive run stepped at say whether it probed. About (pairs) x 2 x 12 s.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from _common import CORPUS, report

from chargen import train
from chargen.threads import Threads
from chargen.training.recipes import default_configs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--fixed", type=int, default=2, help="the fixed count to compare with")
    p.add_argument("--cell", default="gru")
    a = p.parse_args()
    times: list[float] = []
    counts: list[int] = []
    step = Threads.step

    def timed(self: Threads, seconds: float) -> str | None:
        if getattr(self, "training", False):  # the training loop's adapter, not an evaluation's
            times.append(seconds)
            counts.append(self.count)
        return step(self, seconds)

    made = Threads.for_loop

    def for_loop(fixed: int, adapt: bool) -> Threads:
        threads = made(fixed, adapt)
        threads.training = True  # type: ignore[attr-defined]
        return threads

    Threads.step = timed  # type: ignore[method-assign]
    Threads.for_loop = staticmethod(for_loop)  # type: ignore[method-assign]
    medians: dict[int, list[float]] = {0: [], a.fixed: []}
    seen: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.pairs):
            for threads in (0, a.fixed) if i % 2 == 0 else (a.fixed, 0):
                times.clear()
                counts.clear()
                model, config = default_configs(torch.device("cpu"), cell=a.cell, max_steps=a.steps, dropout=0.0,
                                                eval_every=1_000_000, save_every=1_000_000, threads=threads,
                                                val_chars=20_000, device="cpu", precision="fp32")
                train([str(CORPUS)], model, config, out=Path(tmp) / f"run-{i}-{threads}", progress=False)
                medians[threads].append(statistics.median(times[3:]) * 1000)
                if threads == 0:
                    seen.append("".join(sorted({str(c) for c in counts})))
                print(i, threads, round(medians[threads][-1], 1), flush=True)
    pairs = sorted(adaptive / fixed for adaptive, fixed in zip(medians[0], medians[a.fixed]))
    paired = f"{statistics.median(pairs):.3f} ({' '.join(f'{x:.3f}' for x in pairs)})"
    report([{"arm": "adaptive", "median_step_ms": round(statistics.median(medians[0]), 1),
             "counts_stepped_at": " ".join(seen), "paired_adaptive/fixed": paired},
            {"arm": f"--threads {a.fixed}", "median_step_ms": round(statistics.median(medians[a.fixed]), 1),
             "counts_stepped_at": "", "paired_adaptive/fixed": ""}])


if __name__ == "__main__":
    main()
