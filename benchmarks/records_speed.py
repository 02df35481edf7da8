#!/usr/bin/env python3
"""Training speed on records against plain streaming training over the same characters.

    python benchmarks/records_speed.py [--seconds 30] [--corpus corpora/names.txt] [--device cpu]
                                       [--shape gru,2,256,32,64] [--precision auto] [--repeat 1]

Both train the same model at the same batch settings for the same seconds without
evaluation: once with `--records lines` (whole lines, each from a zero state, padded
batches of about batch x seq characters), once on the file as one stream. The figure is
real characters per second (padding not counted; a record's end symbol counts); the
ratio is records / stream. With --repeat the two take turns going first, so a change in
the machine's load hits both alike.
"""
import argparse
import tempfile

from _common import ROOT, chargen_cmd, report, run_json


def speed(corpus: str, shape: str, seconds: float, device: str, precision: str, records: bool) -> dict:
    cell, layers, hidden, batch, seq = shape.split(",")
    with tempfile.TemporaryDirectory() as out:
        summary, _ = run_json(chargen_cmd(
            "train", corpus, "--cell", cell, "--layers", layers, "--hidden-size", hidden, "--batch-size", batch,
            "--seq-len", seq, "--max-time", str(seconds), "--eval-every", "1000000", "--dropout", "0",
            "--device", device, "--precision", precision, "--out", f"{out}/run", "--json", "--quiet",
            *(["--records", "lines"] if records else [])))
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "names.txt"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--shape", default="gru,2,256,32,64", help="cell,layers,hidden,batch,seq")
    p.add_argument("--precision", default="auto")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    rows = []
    for i in range(a.repeat):
        runs = {}
        for records in (False, True) if i % 2 == 0 else (True, False):  # alternate which goes first
            runs[records] = speed(a.corpus, a.shape, a.seconds, a.device, a.precision, records)
        stream, records = runs[False], runs[True]
        rows.append({"shape": a.shape, "device": a.device, "precision": a.precision,
                     "stream_chars_s": stream["chars_per_s"], "stream_steps": stream["steps"],
                     "records_chars_s": records["chars_per_s"], "records_steps": records["steps"],
                     "ratio": round(records["chars_per_s"] / stream["chars_per_s"], 2)})
    report(rows)


if __name__ == "__main__":
    main()
