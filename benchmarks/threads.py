#!/usr/bin/env python3
"""Training speed with the machine quiet and with other busy programs: chargen's adaptive thread
count (`--threads 0`, the default) against every fixed count, at the default shape.

    python benchmarks/threads.py [--seconds 20] [--busy 0,1,2] [--counts 1,2] [--cell gru] [--repeats 2]

For each number of busy programs (each a `python -c "while True: pass"` started here and stopped
after its rows), every thread count runs `chargen train` on corpora/shakespeare.txt for --seconds of
training (no evaluation, dropout 0) in a fresh process; the figure is its training chars/s and
the thread count it ended on, with what changed it (the median of --repeats runs, each list in
the `runs` column). The goal: adaptive at least as fast as the best fixed count when the machine is
busy, and within 3% of it when quiet. Each repeat runs the counts in the other order, so that a
drift in the machine's speed does not favour one column; `paired_vs_best_fixed` is the median over
repeats of the adaptive run's speed over the best fixed count's in the same repeat. It takes
about (busy levels) x (counts + 1) x repeats x (seconds + 5) seconds: 3 x 3 x 2 x 25 s, about 8
minutes, by default.
"""
import argparse
import os
import subprocess
import sys
import statistics
import tempfile
import time

from _common import CORPUS, chargen_cmd, report, run_json


def train(threads: int, seconds: float, cell: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        result, _ = run_json(chargen_cmd(
            "train", str(CORPUS), "--cell", cell, "--max-time", str(seconds), "--eval-every", "1000000",
            "--save-every", "1000000", "--dropout", "0", "--device", "cpu", "--precision", "fp32",
            "--threads", str(threads), "--out", f"{out}/run", "--json", "--quiet"))
    return result


def _paired(ratios: list[float]) -> str:
    """'0.987 (0.951 0.987 1.012)': the median and every ratio."""
    return f"{statistics.median(ratios):.3f} ({' '.join(f'{x:.3f}' for x in ratios)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--busy", default="0,1,2", help="numbers of busy programs, comma-separated")
    p.add_argument("--counts", default=",".join(str(n) for n in range(1, (os.cpu_count() or 1) + 1)),
                   help="fixed thread counts to compare with the adaptive one")
    p.add_argument("--cell", default="gru")
    p.add_argument("--repeats", type=int, default=2, help="runs of each count at each load, in alternating order")
    a = p.parse_args()
    rows = []
    for busy in (int(b) for b in a.busy.split(",")):
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            time.sleep(1 if busy else 0)
            counts = [0] + [int(c) for c in a.counts.split(",")]
            runs: dict[int, list[dict]] = {c: [] for c in counts}
            for k in range(a.repeats):  # forward, backward, ...: a drift in the machine's speed hits all alike
                for threads in counts if k % 2 == 0 else counts[::-1]:
                    runs[threads].append(train(threads, a.seconds, a.cell))
                    print(busy, threads, runs[threads][-1]["chars_per_s"], runs[threads][-1].get("threads"),
                          flush=True)
        finally:
            for hog in hogs:
                hog.terminate()
                hog.wait()
        # Each repeat's adaptive run against the best fixed count of the same repeat (runs made minutes
        # apart, not half an hour): the median of those ratios is the figure a drifting machine spoils least.
        paired = sorted(runs[0][k]["chars_per_s"] / max(runs[c][k]["chars_per_s"] for c in counts[1:])
                        for k in range(a.repeats))
        for threads, done in runs.items():
            speeds = [r["chars_per_s"] for r in done]
            rows.append({"busy_programs": busy, "threads_flag": threads or "adaptive",
                         "chars_per_s": round(statistics.median(speeds)), "runs": " ".join(map(str, speeds)),
                         "threads_used": "; ".join(r.get("threads", "") for r in done),
                         "paired_vs_best_fixed": _paired(paired) if threads == 0 else ""})
    for busy in sorted({r["busy_programs"] for r in rows}):
        level = [r for r in rows if r["busy_programs"] == busy]
        best_fixed = max(r["chars_per_s"] for r in level if r["threads_flag"] != "adaptive")
        for r in level:
            r["vs_best_fixed"] = round(r["chars_per_s"] / best_fixed, 3)
    report(rows)


if __name__ == "__main__":
    main()
