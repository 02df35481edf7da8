#!/usr/bin/env python3
"""Training throughput: chargen vs the baseline loop (benchmarks/baseline.py), same shape, machine and run.

    python benchmarks/train_speed.py [--seconds 20] [--device cpu] [--shape gru,2,256,32,64] [--corpus FILE]
                                     [--reference SCRIPT]

Each shape is cell,layers,hidden,batch,seq. Both train on corpora/shakespeare.txt (or --corpus) for the same
number of seconds without evaluation; the figure is training characters per second.
"""
import argparse
import tempfile

from _common import add_source_args, chargen_cmd, reference_cmd, report, run_json

CPU_SHAPES = ["gru,2,256,32,64", "lstm,2,256,64,128"]
GPU_SHAPES = ["lstm,3,512,128,128"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--shape", action="append", help="cell,layers,hidden,batch,seq (repeatable)")
    add_source_args(p)
    a = p.parse_args()
    rows = []
    for shape in a.shape or (CPU_SHAPES if a.device == "cpu" else GPU_SHAPES):
        cell, layers, hidden, batch, seq = shape.split(",")
        ref, _ = run_json(reference_cmd(
            "train", "--corpus", str(a.corpus), "--cell", cell, "--layers", layers, "--hidden", hidden,
            "--batch", batch, "--seq", seq, "--seconds", str(a.seconds), "--eval-every", str(10 * a.seconds),
            "--device", a.device, script=a.reference))
        for precision in ("fp32", "auto"):
            with tempfile.TemporaryDirectory() as out:
                ours, _ = run_json(chargen_cmd(
                    "train", str(a.corpus), "--cell", cell, "--layers", layers, "--hidden-size", hidden,
                    "--batch-size", batch, "--seq-len", seq, "--max-time", str(a.seconds), "--eval-every", "1000000",
                    "--dropout", "0", "--device", a.device, "--precision", precision, "--out", f"{out}/run",
                    "--json", "--quiet"))
            rows.append({"shape": shape, "device": a.device, "precision": precision,
                         "chargen_chars_s": ours["chars_per_s"], "reference_chars_s": ref["train_chars_per_s"],
                         "ratio": round(ours["chars_per_s"] / ref["train_chars_per_s"], 2)})
    report(rows)


if __name__ == "__main__":
    main()
