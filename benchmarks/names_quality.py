#!/usr/bin/env python3
"""What a records model makes of a list of names: new names, of the right length.

    python benchmarks/names_quality.py [--seconds 120] [--corpus corpora/names.txt] [--samples 1000]
                                       [--temp 1.0] [--seed 1] [--device cpu] [-- EXTRA CHARGEN TRAIN FLAGS]

Trains `chargen train CORPUS --records lines --max-time SECONDS` with the default recipe,
then draws --samples names from its best.pt (sample_records, no --unique) and prints one
JSON line: the share of names drawn that are not in the corpus (new), the share that are
distinct, the share that ended with the end symbol (rather than at 50 characters), and the
mean length of the names drawn against the corpus's mean length.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time

from _common import ROOT, chargen_cmd, machine, run_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "names.txt"))
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--temp", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("extra", nargs="*", help="extra chargen train flags (after --)")
    a = p.parse_args()
    from chargen import SampleConfig, load_model, read_records, sample_records

    names = read_records(a.corpus, "lines").records
    known = set(names)
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary, _ = run_json(chargen_cmd("train", a.corpus, "--records", "lines", "--max-time", str(a.seconds),
                                          "--device", a.device, "--out", f"{out}/run", "--json", "--quiet", *a.extra))
        wall = time.perf_counter() - t0
        model, vocab, _ = load_model(f"{out}/run/best.pt")
    cfg = SampleConfig(length=50, temperature=a.temp, seed=a.seed, num_samples=a.samples)
    drawn = sample_records(model, vocab, cfg)
    new = [r for r in drawn.records if r not in known]
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": machine(), "corpus": a.corpus, "train_s": summary["elapsed_s"],
        "wall_s": round(wall, 1), "steps": summary["steps"], "chars_per_s": summary["chars_per_s"],
        "best_val_loss": summary["best_val_loss"], "model": summary.get("model"), "temperature": a.temp,
        "samples": len(drawn.records), "new_share": round(len(new) / len(drawn.records), 4),
        "distinct_share": round(len(set(drawn.records)) / len(drawn.records), 4),
        "ended_share": round(sum(drawn.ended) / len(drawn.records), 4),
        "mean_len": round(statistics.mean(map(len, drawn.records)), 2),
        "corpus_mean_len": round(statistics.mean(map(len, names)), 2),
        "examples_new": new[:12], "examples_known": [r for r in drawn.records if r in known][:6],
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
