#!/usr/bin/env python3
"""Where a CPU sampling step's time goes: microseconds per character of the chunk rounds,
one stream, by program, cell, hidden size and thread count.

    python benchmarks/cpu_sample_probe.py [--layers 2] [--hidden 16,128,256] [--threads 2,1] [--repeat 5]
                                          [--programs eager,compiled]

Programs (chargen/sample/rounds.py, a Chunk's mode): eager (the default) and compiled
(torch.compile: `--compile`; each shape compiles once first).

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

from chargen.sample.draw import GumbelNoise
from chargen.sample.rounds import Chunk
from chargen.sample.step import FastStep

PROGRAMS = ("eager", "compiled")


def us_per_char(program: str, cell: str, layers: int, hidden: int, chars: int = 3200, k: int = 32) -> float:
    """Microseconds per character of K-round programs for one stream, no filter (1/T folded in)."""
    s = FastStep(sampling_model(cell, layers, hidden)[0].eval())
    state = torch.zeros(layers, 1, hidden)  # (L, N, H)
    state = (state, state.clone()) if cell == "lstm" else state
    chunk = Chunk(s, state, k, 0.8, None, mode=program)
    noise = GumbelNoise(torch.Generator().manual_seed(0), 1, s.head_b.numel())
    with torch.inference_mode():
        for _ in range(5):  # warm-up: compilation, caches
            _, state = chunk.run(state, noise)
        t0 = time.perf_counter()
        for _ in range(chars // k):
            _, state = chunk.run(state, noise)
        return (time.perf_counter() - t0) / (chars // k * k) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", default="16,128,256")
    p.add_argument("--threads", default="2,1")
    p.add_argument("--repeat", type=int, default=5, help="runs per row; the median is reported")
    p.add_argument("--programs", default="eager", help="eager, compiled, or both: eager,compiled")
    a = p.parse_args()
    unknown = set(a.programs.split(",")) - set(PROGRAMS)
    if unknown:
        p.error(f"unknown program(s) {', '.join(sorted(unknown))}: use {', '.join(PROGRAMS)}")
    # a compiled chunk compiles once per shape (dynamic=False): allow one compilation per row shape.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                               2 * len(a.hidden.split(",")) + 1)
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
