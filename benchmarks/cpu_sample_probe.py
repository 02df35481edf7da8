#!/usr/bin/env python3
"""Where a CPU sampling step's time goes: microseconds per character of the chunk rounds,
one stream, by program, cell, hidden size and thread count.

    python benchmarks/cpu_sample_probe.py [--layers 2] [--hidden 16,128,256] [--threads 2,1] [--repeat 5]
                                          [--programs script,inductor]

Programs: script (TorchScript, chargen/scripted.py: the default) and inductor
(torch.compile, chargen/inductor.py: `--compile`; each shape compiles once first).

At hidden size 16 the products cost next to nothing, so that row is the fixed cost of
the ops themselves; the rest of a larger model's time is its matrix products, which
read every weight once per character. A measuring tool for benchmarks/README.md;
sample_speed.py is the benchmark against the reference.
"""
import argparse
import itertools
import statistics
import time

import torch

from _common import report, sampling_model

from chargen import inductor, scripted
from chargen.fastpath import FastStep


def us_per_char(program: str, cell: str, layers: int, hidden: int, chars: int = 3200, k: int = 32) -> float:
    step = FastStep(sampling_model(cell, layers, hidden)[0].eval())
    if program == "script":
        rounds = scripted.rounds
    else:
        rounds = lambda step, w, addend, ids, state: inductor.rounds(step, None, w, step.head_b, addend, ids, state)
    addend, ids = torch.randn(k, 1, 65), torch.zeros(k, 1, dtype=torch.long)  # (K, N, V), (K, N)
    zeros = torch.zeros(layers, 1, hidden)
    state = (zeros, zeros.clone()) if cell == "lstm" else zeros
    with torch.inference_mode():
        for _ in range(5):  # warm-up: compilation, TorchScript's profiling runs, caches
            state = rounds(step, step.head_w_t, addend, ids, state)
        t0 = time.perf_counter()
        for _ in range(chars // k):
            state = rounds(step, step.head_w_t, addend, ids, state)
        return (time.perf_counter() - t0) / (chars // k * k) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", default="16,128,256")
    p.add_argument("--threads", default="2,1")
    p.add_argument("--repeat", type=int, default=5, help="runs per row; the median is reported")
    p.add_argument("--programs", default="script", help="script, inductor, or both: script,inductor")
    a = p.parse_args()
    if scripted.compiled() is None:
        raise SystemExit("this torch cannot script chargen's rounds: nothing to probe")
    rows = []
    for threads, program in itertools.product(map(int, a.threads.split(",")), a.programs.split(",")):
        torch.set_num_threads(threads)
        for cell in ("gru", "lstm"):
            for hidden in map(int, a.hidden.split(",")):
                us = statistics.median(us_per_char(program, cell, a.layers, hidden) for _ in range(a.repeat))
                weights = 4 * a.layers * hidden * hidden * (3 if cell == "gru" else 4) * 2 - 4 * hidden * hidden * (
                    3 if cell == "gru" else 4)  # layer 0's input part is a table lookup
                rows.append({"threads": threads, "program": program, "cell": cell, "shape": f"{a.layers}x{hidden}",
                             "weights_read_MB": round((weights + 4 * hidden * 65) / 1e6, 2),
                             "us_per_char": round(us, 1), "chars_s": round(1e6 / us)})
    report(rows)


if __name__ == "__main__":
    main()
