#!/usr/bin/env python3
"""Generation speed of an exported ONNX step under onnxruntime vs chargen's own sampler, one stream.

    python benchmarks/onnx_speed.py [--checkpoint checkpoints/shakespeare-gru/best.pt] [--chars 5000]
                                    [--temp 0.8] [--threads 1]

The checkpoint is exported with chargen.export.onnx.export_onnx into a temporary folder, then
both generate --chars characters after warming on a newline, on the CPU with --threads threads
(torch.set_num_threads, and onnxruntime's intra-op threads):
  onnxruntime  a plain Python loop written here: one session.run per character, the state fed
               back, the unknown symbol masked, then argmax (--temp 0) or the logits / T plus
               Gumbel noise from numpy, argmax (a draw from softmax(logits / T))
  chargen      chargen.sample.generate with SampleConfig(temperature=--temp, seed=1)
Prints one JSON line: chars/s of each (loop time only: loading, exporting and session set-up are
reported apart) and their ratio. With --temp 0 both are greedy, and `greedy_common_prefix` counts
the characters both produced alike before float rounding first made them differ (--chars if never).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import ROOT, machine

CHECKPOINT = ROOT / "checkpoints" / "shakespeare-gru" / "best.pt"


def onnx_text(session, vocab, cfg, chars: int, temperature: float, seed: int) -> tuple[str, float]:
    """`chars` characters from the exported step after warming on a newline, and the loop's seconds."""
    rng = np.random.default_rng(seed)
    state_names = [i.name for i in session.get_inputs()][1:]
    state = {name: np.zeros((cfg.num_layers, 1, cfg.hidden_size), np.float32) for name in state_names}
    start = vocab.chars.index("\n") if "\n" in vocab.chars else 0
    ids = np.array([start], np.int64)  # (1,)
    out = []
    t0 = time.perf_counter()
    for _ in range(chars):
        logits, *new = session.run(None, {"ids": ids, **state})  # logits (1, V)
        state = dict(zip(state_names, new))
        scores = logits[0].astype(np.float64)  # (V,)
        if vocab.unk_id is not None:
            scores[vocab.unk_id] = -np.inf
        if temperature > 0:
            scores = scores / temperature + rng.gumbel(size=scores.shape)
        nxt = int(scores.argmax())
        out.append(vocab.chars[nxt])
        ids = np.array([nxt], np.int64)
    return "".join(out), time.perf_counter() - t0


def chargen_text(model, vocab, chars: int, temperature: float, seed: int) -> tuple[str, float]:
    from chargen.sample import SampleConfig, generate

    t0 = time.perf_counter()
    text = "".join(generate(model, vocab, SampleConfig(length=chars, temperature=temperature, seed=seed), "cpu"))
    return text, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--chars", type=int, default=5000)
    parser.add_argument("--temp", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import onnxruntime as ort

    from chargen.export.onnx import export_onnx
    from chargen.modelfile import load_model

    torch.set_num_threads(args.threads)
    model, vocab, _ = load_model(args.checkpoint)
    cfg = model.config
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        t0 = time.perf_counter()
        export_onnx(model, vocab, path)
        export_s = time.perf_counter() - t0
        size = path.stat().st_size
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    onnx_out, onnx_s = onnx_text(session, vocab, cfg, args.chars, args.temp, args.seed)
    ours, ours_s = chargen_text(model, vocab, args.chars, args.temp, args.seed)
    row = {"model": f"{cfg.cell} {cfg.num_layers}x{cfg.hidden_size}, V={cfg.vocab_size}", "chars": args.chars,
           "temperature": args.temp, "threads": args.threads, "export_s": round(export_s, 2),
           "onnx_bytes": size, "onnxruntime_chars_per_s": round(args.chars / onnx_s),
           "chargen_chars_per_s": round(args.chars / ours_s), "onnxruntime_over_chargen": round(ours_s / onnx_s, 3),
           "onnxruntime": ort.__version__, "machine": machine(), "date": time.strftime("%Y-%m-%d")}
    if args.temp == 0:
        row["greedy_common_prefix"] = next((i for i, (a, b) in enumerate(zip(onnx_out, ours)) if a != b),
                                           min(len(onnx_out), len(ours)))
    print(json.dumps(row))


if __name__ == "__main__":
    main()
