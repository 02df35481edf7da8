#!/usr/bin/env python3
"""Where dropout starts to pay: the CPU recipe trained for a given number of passes over a
corpus's training text (corpora/shakespeare.txt unless --corpus), with and without dropout.

    python benchmarks/dropout_passes.py [--passes 6,9,12] [--dropouts 0,0.1] [--corpus FILE] [--head N]
                                        [--device cpu] [-- EXTRA CHARGEN FLAGS]

Each run is `chargen train` with the default recipe, the dropout given, and a step budget
of PASSES x (training characters / (batch x seq len)) instead of a time budget, so that
the result does not depend on how busy the machine is (the learning-rate schedule runs
over those steps, as it runs over --max-time otherwise). Each best.pt is then evaluated
on the validation tail, state carried and in 256-character windows (nats per character).
The runs alternate dropout values within each pass count. `chargen train` chooses no
dropout when it plans at most recipes.SHORT_PASSES passes; these runs are what that
threshold rests on.
"""
import argparse
import atexit
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

from _common import add_source_args, chargen_cmd, report, run_json

from chargen.data import read_text
from chargen.config import TrainConfig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--passes", default="6,9,12", help="comma-separated pass counts")
    p.add_argument("--dropouts", default="0,0.1", help="comma-separated dropout values")
    add_source_args(p, reference=False)
    p.add_argument("--head", type=int, default=0, help="use only the corpus's first N characters (a small corpus)")
    p.add_argument("--device", default="cpu")
    p.add_argument("extra", nargs="*", help="extra chargen train flags (after --), e.g. --eval-every 100")
    a = p.parse_args()
    train = TrainConfig()
    text = read_text(a.corpus)
    if a.head:
        text = text[:a.head]
        folder = tempfile.mkdtemp()
        atexit.register(shutil.rmtree, folder, True)
        a.corpus = Path(folder) / f"{a.corpus.stem}_head{a.head}.txt"
        a.corpus.write_text(text, encoding="utf-8")
    train_chars = (1 - train.val_frac) * len(text)
    per_step = train.batch_size * train.seq_len
    rows = []
    for passes in [float(x) for x in a.passes.split(",")]:
        steps = math.ceil(passes * train_chars / per_step)
        for dropout in a.dropouts.split(","):
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                ours, _ = run_json(chargen_cmd("train", str(a.corpus), "--max-steps", str(steps), "--max-time", "0",
                                               "--dropout", dropout, "--device", a.device, "--out", f"{out}/run",
                                               "--json", "--quiet", *a.extra))
                wall = time.perf_counter() - t0
                ev, _ = run_json(chargen_cmd("eval", f"{out}/run/best.pt", str(a.corpus), "--split", "val",
                                             "--window", "256", "--device", a.device, "--json"))
            row = {"corpus": a.corpus.name, "passes": passes, "dropout": float(dropout), "steps": ours["steps"],
                   "stop": ours["stop_reason"], "train_s": ours["elapsed_s"], "wall_s": round(wall, 1),
                   "val_carried": ev["loss"], "val_win256": ev["loss_window256"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    report(rows)


if __name__ == "__main__":
    main()
