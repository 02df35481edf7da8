#!/usr/bin/env python3
"""What each part of the GPU sampling path buys: chunks replayed as CUDA graphs and TF32
products, each switched off in turn.

    python benchmarks/sample_probe.py [--shape lstm,3,512] [--length 3000]

Variants: all on (the Sampler's default on a GPU: chunks of rounds replayed as a CUDA
graph, TF32 products); no TF32 (chargen.sample.step.tf32 patched to a block that
changes nothing); no CUDA graph (the same chunks run eagerly: Chunk mode "eager"); and
one round per graph (`draw(ahead=False)`: a graph of one round per character, as
--stop and interactive mode draw). A measuring tool for benchmarks/README.md (it
patches chargen's tf32 and the Sampler's mode to switch parts off); sample_speed.py
is the benchmark against the reference.
"""
import argparse
import json
import time
from contextlib import nullcontext

import torch
from _common import machine, sampling_model

import chargen.sample.rounds as rounds_mod
import chargen.sample.step as step_mod
from chargen.sample import SampleConfig, Sampler


def rate(model, vocab, streams: int, length: int, ahead: bool, mode: str, device: str = "cuda") -> float:
    """Characters/s of a Sampler whose chunks run in `mode` ("graph" or "eager"), after a warm-up."""
    cfg = SampleConfig(length=length, temperature=0.8, seed=0, num_samples=streams)
    sampler = Sampler(model, vocab, cfg, device)
    sampler.mode = mode  # read when the first chunk is built, at the first draw
    sampler.feed("")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in sampler.draw(128, ahead=ahead):  # warm-up: capture, library handles
        pass
    sync()
    t0 = time.perf_counter()
    n = sum(1 for _ in sampler.draw(length, ahead=ahead))
    sync()
    assert all(c.mode == mode for c in sampler.chunks.values())
    return streams * n / (time.perf_counter() - t0)


def set_tf32(t32) -> None:
    """Install `t32` as chargen's TF32 block everywhere the sampling path looks it up."""
    step_mod.tf32 = rounds_mod.tf32 = t32


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="lstm,3,512")
    p.add_argument("--length", type=int, default=3000)
    a = p.parse_args()
    cell, layers, hidden = a.shape.split(",")
    model, vocab = sampling_model(cell, int(layers), int(hidden))
    tf32 = step_mod.tf32

    def no_tf32(cuda):
        return nullcontext()

    variants = {  # name: (tf32 block, chunk mode, ahead)
        "all on": (tf32, "graph", True),
        "no TF32": (no_tf32, "graph", True),
        "no CUDA graph (eager chunks)": (tf32, "eager", True),
        "one round per graph (ahead=False)": (tf32, "graph", False),
    }
    print(f"machine: {machine()}", flush=True)
    rows = []
    try:
        for name, (t32, mode, ahead) in variants.items():
            set_tf32(t32)
            for streams in (1, 256):
                length = a.length if streams == 1 else a.length // 3
                row = {"variant": name, "streams": streams,
                       "chars_s": round(rate(model, vocab, streams, length, ahead, mode))}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        set_tf32(tf32)
    print("\n| variant | streams | chars/s |\n|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['streams']} | {r['chars_s']:,} |")


if __name__ == "__main__":
    main()
