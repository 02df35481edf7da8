#!/usr/bin/env python3
"""Time to quality: chargen's default recipe vs the baseline loop (benchmarks/baseline.py).

    python benchmarks/train_quality.py [--seconds 150] [--cells gru,lstm,rnn] [--device cpu] [--corpus FILE]
                                       [--reference SCRIPT] [--skip-reference] [-- EXTRA CHARGEN FLAGS]

The corpus is corpora/shakespeare.txt unless --corpus names another file.
For each cell, chargen trains with its defaults, `--cell CELL` and `--max-time SECONDS` (wall
time of the training loop, evaluations included); the baseline trains the same cell for the same
seconds of training at its CPU shape (2x256, batch 32, seq 64) on the CPU, or at the GPU yardstick
(3x512, batch 128, seq 128, bf16 autocast) on a GPU. Both validation
figures are in nats per character: the whole tail with state carried, and
256-character windows. wall_s is process start to exit, the checkpoint written.
"""
import argparse
import tempfile
import time

from _common import add_source_args, chargen_cmd, reference_cmd, report, run_json

REF_CPU: tuple[str, ...] = ()  # the baseline's defaults: 2x256, batch 32, seq 64
REF_GPU = ("--layers", "3", "--hidden", "512", "--batch", "128", "--seq", "128")


def chargen_row(a: argparse.Namespace, cell: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        ours, _ = run_json(chargen_cmd("train", str(a.corpus), "--cell", cell, "--max-time", str(a.seconds),
                                       "--device", a.device, "--out", f"{out}/run", "--json", "--quiet", *a.extra))
        wall = time.perf_counter() - t0
        ev, _ = run_json(chargen_cmd("eval", f"{out}/run/best.pt", str(a.corpus), "--split", "val",
                                     "--window", "256", "--device", a.device, "--json"))
    return {"who": f"chargen --cell {cell} " + " ".join(a.extra), "train_s": ours["elapsed_s"],
            "wall_s": round(wall, 1), "steps": ours["steps"], "chars_s": ours["chars_per_s"],
            "val_carried": ev["loss"], "val_win256": ev["loss_window256"]}


def baseline_row(a: argparse.Namespace, cell: str) -> dict:
    shape = ("--cell", cell, *(REF_CPU if a.device == "cpu" else REF_GPU))
    ref, wall = run_json(reference_cmd("train", "--corpus", str(a.corpus), "--seconds", str(a.seconds),
                                       "--eval-every", str(a.seconds / 5), "--device", a.device, *shape,
                                       script=a.reference))
    return {"who": f"{a.reference.stem} " + " ".join(shape), "train_s": a.seconds,
            "wall_s": round(wall, 1), "steps": ref["steps"], "chars_s": ref["train_chars_per_s"],
            "val_carried": ref["best_val_stream"], "val_win256": ref["best_val_win256"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=150.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--cells", default="gru", help="cells to train, comma-separated (gru,lstm,rnn): each against "
                                                  "the baseline with the same cell")
    p.add_argument("--skip-reference", action="store_true")
    add_source_args(p)
    p.add_argument("extra", nargs="*", help="extra chargen train flags (after --)")
    a = p.parse_args()
    rows = []
    for cell in a.cells.split(","):
        rows.append(chargen_row(a, cell))
        if not a.skip_reference:
            rows.append(baseline_row(a, cell))
    report(rows)


if __name__ == "__main__":
    main()
