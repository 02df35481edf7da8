#!/usr/bin/env python3
"""What each part of the GPU sampling path buys: chunked CUDA graphs and TF32 products, each
switched off in turn.

    python benchmarks/sample_probe.py [--shape lstm,3,512] [--length 3000]

A measuring tool for benchmarks/README.md (it patches chargen's functions to switch parts
off); sample_speed.py is the benchmark against the reference.
"""
import argparse
import json
import time
from contextlib import nullcontext

import torch

from _common import machine, sampling_model

import chargen.chunked as chunked
import chargen.fastpath as fastpath
from chargen.sample import SampleConfig, Sampler


def rate(model, vocab, streams: int, length: int, ahead: bool) -> float:
    cfg = SampleConfig(length=length, temperature=0.8, seed=0, num_samples=streams)
    sampler = Sampler(model, vocab, cfg, "cuda")
    sampler.feed("")
    for _ in sampler.draw(128, ahead=ahead):  # warm-up: capture, library handles
        pass
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    n = sum(1 for _ in sampler.draw(length, ahead=ahead))
    torch.cuda.synchronize()
    return streams * n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="lstm,3,512")
    p.add_argument("--length", type=int, default=3000)
    a = p.parse_args()
    cell, layers, hidden = a.shape.split(",")
    model, vocab = sampling_model(cell, int(layers), int(hidden))
    tf32 = fastpath.tf32
    no_tf32 = lambda cuda: nullcontext()
    variants = {
        "all on": (tf32, True),
        "no TF32": (no_tf32, True),
        "no CUDA graph (one step at a time)": (tf32, False),
    }
    print(f"machine: {machine()}", flush=True)
    rows = []
    for name, (t32, ahead) in variants.items():
        fastpath.tf32, chunked.tf32 = t32, t32
        for streams in (1, 256):
            length = a.length if streams == 1 else a.length // 3
            row = {"variant": name, "streams": streams, "chars_s": round(rate(model, vocab, streams, length, ahead))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| variant | streams | chars/s |\n|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['streams']} | {r['chars_s']:,} |")


if __name__ == "__main__":
    main()
