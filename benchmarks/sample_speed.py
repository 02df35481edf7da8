#!/usr/bin/env python3
"""Sampling speed: chargen's sampler vs the eager loop of benchmarks/baseline.py (the reference), same shape
and run.

    python benchmarks/sample_speed.py [--device cpu] [--length 3000] [--shape gru,2,256] [--repeat 3]
    python benchmarks/sample_speed.py --process [--checkpoint PT] [--length 100000] [--ref-length 5000] [--repeat 3]

Library mode (the default): both use a freshly initialised model over a 65-character
vocabulary (speed does not depend on the weights), temperature 0.8, one stream and
--batch streams. The default shape is chargen's default model on that device class:
GRU 2x256 on a CPU, LSTM 3x512 (issue 5's GPU shape) on a GPU. With --repeat R the
reference and chargen each run R times, alternating, and every run is a row: the
machines are shared and noisy.

chargen runs these ways (`path`):
  eager     the default on a CPU: the chunked rounds (chargen/sample/rounds.py) run eagerly
  graph     the default on a GPU: the chunked rounds replayed as a CUDA graph
  compiled  CPU only, `SampleConfig(compile=True)` (`--compile`): the rounds compiled by
            torch.compile (cached on disk: the first run of a shape pays most)
  plain     written here, not chargen's: the whole CharRNN called once per character,
            then filter_logits and Gumbel noise: what the rounds buy
first_s is the time to the first 20 characters, model set-up and compilation included.

Process mode (--process): the whole process, start to exit, of

    chargen sample CHECKPOINT --length 100000 --temp 0.8 --seed 1 -q > /dev/null

(chars/s = length / wall seconds: Python and torch start-up, loading the checkpoint and
warming included), for the default path and with --compile. Each --compile repeat uses
a fresh Inductor cache folder, run twice: `compile (first run)` compiles from nothing,
`compile (second run)` hits the cache the first one left. The checkpoint defaults to
the shipped GRU 2x256 (checkpoints/shakespeare-gru/best.pt); the reference samples
(one stream, --ref-length characters after its warm-up) at the checkpoint's shape in
the same run.
"""
import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from _common import ROOT, add_source_args, chargen_cmd, reference_cmd, report, run_json, sampling_model

CHECKPOINT = ROOT / "checkpoints" / "shakespeare-gru" / "best.pt"


def plain_ids(model, vocab, cfg, device: str) -> Iterator[torch.Tensor]:
    """The plain per-character path, written here (chargen has none): the whole model once per
    character from its nn.RNN state, then filter_logits, the unknown symbol masked, Gumbel noise
    from the same generator chargen uses, and argmax. Yields cfg.length ids (N,) on the CPU."""
    from chargen.sample import GumbelNoise, filter_logits
    from chargen.sample.sampler import start_ids

    model = model.to(device).eval()
    gen = torch.Generator(device)
    gen.manual_seed(cfg.seed)
    noise = GumbelNoise(gen, cfg.num_samples, len(vocab), skip=vocab.unk_id)
    with torch.inference_mode():
        logits, hidden = model(start_ids(vocab, cfg.prime).to(device)[None].expand(cfg.num_samples, -1))
        last = logits[:, -1].float()  # (N, V)
    for _ in range(cfg.length):
        with torch.inference_mode():  # per step: a generator wrapped in it re-enters it at every yield
            if vocab.unk_id is not None:
                last = last.index_fill(1, torch.tensor([vocab.unk_id], device=device), -math.inf)
            if cfg.temperature == 0:
                nxt = last.argmax(dim=-1)  # (N,)
            else:
                scores = filter_logits(last, cfg.temperature, cfg.top_k, cfg.top_p) + noise.next()
                nxt = scores.argmax(dim=-1)  # (N,)
            logits, hidden = model(nxt[:, None], hidden)  # (N, 1, V)
            last = logits[:, -1].float()
        yield nxt.cpu()


def chargen_rate(cell: str, layers: int, hidden: int, device: str, length: int, streams: int,
                 path: str) -> tuple[float, float]:
    """Characters/s on `path` after a warm-up of 20 steps, and the warm-up's seconds: "eager" or
    "graph" (generate_ids as it is: eager rounds on a CPU, a CUDA graph on a GPU), "compiled"
    (SampleConfig(compile=True)) or "plain" (plain_ids above)."""
    from chargen.sample import SampleConfig, generate_ids

    model, vocab = sampling_model(cell, layers, hidden)
    cfg = SampleConfig(length=length, temperature=0.8, seed=0, num_samples=streams, compile=path == "compiled")
    t0 = time.perf_counter()
    steps = plain_ids(model, vocab, cfg, device) if path == "plain" else generate_ids(model, vocab, cfg, device)
    for _ in range(20):  # warm-up, as the reference does
        next(steps)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(1 for _ in steps)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return streams * n / (time.perf_counter() - t0), first


def library_rows(a) -> list[dict]:
    shape = a.shape or ("gru,2,256" if a.device == "cpu" else "lstm,3,512")
    cell, layers, hidden = shape.split(",")
    paths = ("eager", "compiled", "plain") if a.device == "cpu" else ("graph", "plain")
    rows = []
    for run in range(1, a.repeat + 1):
        ref, _ = run_json(reference_cmd("sample", "--cell", cell, "--layers", layers, "--hidden", hidden,
                                        "--device", a.device, "--length", str(a.length), "--batch", str(a.batch),
                                        script=a.reference))
        for streams in (1, a.batch):
            ref_rate = ref[f"chars_per_s_batch{streams}"]
            for path in paths:
                rate, first = chargen_rate(cell, int(layers), int(hidden), a.device, a.length, streams, path)
                rows.append({"run": run, "shape": shape, "device": a.device, "streams": streams,
                             "path": path, "first_s": round(first, 2), "chargen_chars_s": round(rate),
                             "reference_chars_s": ref_rate, "ratio": round(rate / ref_rate, 1)})
    return rows


def sample_cmd() -> list[str]:
    """`chargen`: the venv's console script when it sits next to this Python, else `python -m chargen`."""
    script = Path(sys.executable).with_name("chargen")
    return [str(script)] if script.exists() else chargen_cmd()


def process_seconds(args: list[str], env: dict) -> float:
    """Wall seconds of one `chargen sample` process, start to exit, its text to /dev/null."""
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def process_rows(a) -> list[dict]:
    from chargen.modelfile import load_model

    checkpoint = Path(a.checkpoint).resolve()
    cfg = load_model(checkpoint)[0].config
    shape = f"{cfg.cell},{cfg.num_layers},{cfg.hidden_size}"
    base = [*sample_cmd(), "sample", str(checkpoint), "--length", str(a.length), "--temp", "0.8", "--seed", "1",
            "-q", "--device", a.device]
    print(f"command: {' '.join(base)} [--compile] > /dev/null", flush=True)
    rows = []
    for run in range(1, a.repeat + 1):
        ref, _ = run_json(reference_cmd("sample", "--cell", cfg.cell, "--layers", str(cfg.num_layers),
                                        "--hidden", str(cfg.hidden_size), "--emb", str(cfg.embedding_dim),
                                        "--device", a.device, "--length", str(a.ref_length), "--batch", "1",
                                        script=a.reference))
        ref_rate = ref["chars_per_s_batch1"]
        timed = [("default", process_seconds(base, dict(os.environ)))]
        if a.device == "cpu":
            cache = tempfile.mkdtemp(prefix="chargen-inductor-")
            try:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
                timed.append(("compile (first run)", process_seconds([*base, "--compile"], env)))
                timed.append(("compile (second run)", process_seconds([*base, "--compile"], env)))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
        for path, wall in timed:
            rate = a.length / wall
            rows.append({"run": run, "shape": shape, "device": a.device, "process": path, "length": a.length,
                         "wall_s": round(wall, 2), "chargen_chars_s": round(rate),
                         "reference_chars_s": ref_rate, "ratio": round(rate / ref_rate, 2)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--length", type=int, default=None,
                   help="characters per stream (default 3000; 100000 with --process)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--shape", default=None, help="cell,layers,hidden (default: gru,2,256 on CPU, lstm,3,512 on GPU)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each, alternating (default 1)")
    p.add_argument("--process", action="store_true", help="time whole `chargen sample` processes")
    p.add_argument("--checkpoint", default=str(CHECKPOINT), help="with --process: the model to sample")
    p.add_argument("--ref-length", type=int, default=5000,
                   help="with --process: the reference's characters (one stream, after its warm-up)")
    add_source_args(p, corpus=False)
    a = p.parse_args()
    if a.length is None:
        a.length = 100_000 if a.process else 3000
    report(process_rows(a) if a.process else library_rows(a))


if __name__ == "__main__":
    main()
