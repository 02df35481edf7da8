#!/usr/bin/env python3
"""Did a change cost speed? This checkout against an earlier revision, side by side in one run.

    python benchmarks/regression.py --old REV [--seconds 30] [--quality-seconds 145] [--repeats 2]

The earlier revision is unpacked from git (`git archive`, no worktree left behind) into a temporary
folder, and each figure is taken from both, alternating old, new, old, new so that a drift in the
machine's speed falls on both alike:
- training characters per second at the default CPU shape (GRU 2x256, batch 32 x 64), no evaluation;
- the best validation loss after `--quality-seconds` of training with the default settings;
- the wall time of a whole `chargen sample --length 100000` process on the shipped model.
Both train on corpora/shakespeare.txt (or --corpus). The table gives each figure's median and new/old,
and the median of the new/old ratios of each pair (run i of both, taken back to back), which a slow
drift of the machine's speed cancels from: the figure to trust on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import ROOT, report, run_json

CORPUS = ROOT / "corpora" / "shakespeare.txt"
SHIPPED = "checkpoints/shakespeare-gru/best.pt"


def unpack(rev: str, into: Path) -> Path:
    """The tree of `rev` (its tracked files, shipped checkpoints included) in `into`."""
    archive = into / "old.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), rev], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    archive.unlink()
    return into / "tree"


def chargen(tree: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); "
            "from chargen.cli.app import main; sys.argv[0] = 'chargen'; main()", *args]


def train(tree: Path, corpus: Path, out: Path, *args: str) -> dict:
    summary, _ = run_json(chargen(tree, "train", str(corpus), "--out", str(out), "--device", "cpu", "--json",
                                  "--quiet", *args), cwd=str(tree))
    return summary


def sample_seconds(tree: Path, length: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(chargen(tree, "sample", SHIPPED, "--length", str(length), "--seed", "1"), cwd=str(tree),
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="the earlier revision (a commit, tag or branch)")
    p.add_argument("--corpus", type=Path, default=CORPUS)
    p.add_argument("--seconds", type=float, default=30.0, help="seconds of each speed run")
    p.add_argument("--quality-seconds", type=float, default=145.0, help="seconds of each quality run (0: skip)")
    p.add_argument("--sample-length", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=2, help="speed and sampling runs of each revision")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"old": unpack(a.old, Path(tmp)), "new": ROOT}
        figures: dict[str, dict[str, list[float]]] = {k: {"train_chars_s": [], "sample_100k_s": [],
                                                          "val_loss_at_s": []} for k in trees}
        for i in range(a.repeats):
            # old, new, then new, old: a drift in the machine's speed over a pair falls on both alike
            for name, tree in list(trees.items())[:: 1 if i % 2 == 0 else -1]:
                speed = train(tree, a.corpus, Path(tmp) / f"speed-{name}-{i}", "--max-time", str(a.seconds),
                              "--eval-every", "1000000", "--dropout", "0")
                figures[name]["train_chars_s"].append(speed["chars_per_s"])
                figures[name]["sample_100k_s"].append(sample_seconds(tree, a.sample_length))
        if a.quality_seconds:
            for name, tree in trees.items():
                run = train(tree, a.corpus, Path(tmp) / f"quality-{name}", "--max-time", str(a.quality_seconds))
                figures[name]["val_loss_at_s"].append(run["best_val_loss"])
    rows = []
    for key in ("train_chars_s", "val_loss_at_s", "sample_100k_s"):
        old, new = (statistics.median(figures[k][key]) if figures[k][key] else float("nan") for k in trees)
        label = key.replace("_at_s", f" at {a.quality_seconds:g} s").replace("100k", f"{a.sample_length}chars")
        pairs = sorted(n / o for o, n in zip(figures["old"][key], figures["new"][key]) if o)
        rows.append({"figure": label, "old": round(old, 4),
                     "new": round(new, 4), "new/old": round(new / old, 3) if old else None,
                     "median_pair_new/old": round(statistics.median(pairs), 3) if pairs else None,
                     "pairs": " ".join(f"{r:.3f}" for r in pairs), "runs": len(figures["new"][key])})
    print(f"old: {a.old}; new: {ROOT} ({os.environ.get('CHARGEN_REV', 'working tree')})")
    report(rows)


if __name__ == "__main__":
    main()
