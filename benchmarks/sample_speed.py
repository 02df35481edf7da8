#!/usr/bin/env python3
"""Sampling speed: chargen's sampler vs the reference's eager loop, same shape and run.

    python benchmarks/sample_speed.py [--device cpu] [--length 3000] [--shape gru,2,256] [--repeat 3]

Both use a freshly initialised model over a 65-character vocabulary (speed does not
depend on the weights), temperature 0.8, one stream and --batch streams. The default
shape is chargen's default model on that device class: GRU 2x256 on a CPU, LSTM 3x512
(issue 5's GPU shape) on a GPU. With --repeat R the reference and chargen each run R
times, alternating, and every run is a row: the machines are shared and noisy.

On a CPU, chargen runs four ways: fast (TorchScript chunks, the default), fast-compiled
(`--compile`: torch.compile'd chunks), fast-python (the chunks from Python) and plain
(nn.RNN). first_s is the time to the first 20 characters, compilation included
(torch.compile's is cached on disk: the first run of a shape pays most).
"""
import argparse
import time

import torch

from _common import reference_cmd, report, run_json, sampling_model


def chargen_rate(cell: str, layers: int, hidden: int, device: str, length: int, streams: int,
                 path: str) -> tuple[float, float]:
    """Characters/s on `path` after a warm-up of 20 steps, and the warm-up's seconds: "fast" (FastStep
    and chunks: TorchScript on a CPU, a CUDA graph on a GPU), "fast-compiled" (the chunks compiled by
    torch.compile), "fast-python" (the chunks run from Python: what TorchScript buys) or "plain" (nn.RNN)."""
    from chargen import chunked
    from chargen.sample import SampleConfig, generate_ids

    model, vocab = sampling_model(cell, layers, hidden)
    cfg = SampleConfig(length=length, temperature=0.8, seed=0, num_samples=streams, compile=path == "fast-compiled")
    chunked.SCRIPTED = path == "fast"
    t0 = time.perf_counter()
    steps = generate_ids(model, vocab, cfg, device, fast=path != "plain")
    for _ in range(20):  # warm-up, as the reference does
        next(steps)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(1 for _ in steps)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return streams * n / (time.perf_counter() - t0), first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--length", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--shape", default=None, help="cell,layers,hidden (default: gru,2,256 on CPU, lstm,3,512 on GPU)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each, alternating (default 1)")
    a = p.parse_args()
    shape = a.shape or ("gru,2,256" if a.device == "cpu" else "lstm,3,512")
    cell, layers, hidden = shape.split(",")
    rows = []
    for run in range(1, a.repeat + 1):
        ref, _ = run_json(reference_cmd("sample", "--cell", cell, "--layers", layers, "--hidden", hidden,
                                        "--device", a.device, "--length", str(a.length), "--batch", str(a.batch)))
        for streams in (1, a.batch):
            ref_rate = ref[f"chars_per_s_batch{streams}"]
            cpu_paths = ("fast", "fast-compiled", "fast-python", "plain")
            for path in cpu_paths if a.device == "cpu" else ("fast", "plain"):
                rate, first = chargen_rate(cell, int(layers), int(hidden), a.device, a.length, streams, path)
                rows.append({"run": run, "shape": shape, "device": a.device, "streams": streams,
                             "path": path, "first_s": round(first, 2), "chargen_chars_s": round(rate),
                             "reference_chars_s": ref_rate, "ratio": round(rate / ref_rate, 1)})
    report(rows)


if __name__ == "__main__":
    main()
