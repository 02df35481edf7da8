"""Fine-tuning from the shipped base model against training from scratch, on small corpora.

For each corpus in corpora/finetune/ and each budget, two runs side by side in one process
tree, one after the other: `chargen train` with the CPU recipe from random weights (the
from-scratch default, its dropout rule included), and `chargen train --init base` (the
fine-tuning recipe). Each corpus is split into its first 90% (training) and its last 10% of
characters (validation, a whole file: --val-files 1), so both runs score exactly the same text
even though the base reads bytes and a from-scratch run characters. Reported: each best.pt's
loss on that text in nats per character (a bytes model's loss per byte times bytes per
character), the relative gain, and the share of real words (a word list from a registry
package, corpora/finetune/words.txt) in a seeded sample at temperature 0.8.

    python benchmarks/finetune.py [--budgets 60 300] [--corpora NAME ...] [--arms scratch base]
                                  [chargen train flags for the --init arms, e.g. --lr 0.002]

Run it on a quiet machine: the budgets are seconds of training.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, chargen_cmd, machine

CORPORA = ROOT / "corpora" / "finetune"
WORDS = CORPORA / "words.txt"
SAMPLE = ["--temp", "0.8", "--seed", "1", "--length", "3000", "-q"]


def split_corpus(path: Path, folder: Path) -> Path:
    """A folder holding the corpus's first 90% (a.txt) and last 10% of characters (b.txt)."""
    text = path.read_text(encoding="utf-8")
    cut = len(text) - len(text) // 10
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text(text[:cut], encoding="utf-8")
    (folder / "b.txt").write_text(text[cut:], encoding="utf-8")
    return folder


def per_char_loss(best: Path, val: Path) -> float:
    """best.pt's loss on `val` in nats per character, whatever its vocabulary counts."""
    out = subprocess.run(chargen_cmd("eval", str(best), str(val), "--json", "--device", "cpu"), check=True,
                         capture_output=True, text=True).stdout
    scored = json.loads(out)
    return scored["loss"] * scored["chars"] / len(val.read_text(encoding="utf-8"))


def real_word_share(best: Path, words: set[str]) -> float:
    text = subprocess.run(chargen_cmd("sample", str(best), *SAMPLE, "--device", "cpu"), check=True,
                          capture_output=True, text=True).stdout
    found = re.findall(r"[A-Za-z]+(?:'[a-z]+)?", text)
    return sum(w.lower() in words for w in found) / max(1, len(found))


def run(arm: str, data: Path, budget: float, out: Path, extra: list[str]) -> dict:
    flags = ["--init", arm, *extra] if arm != "scratch" else []
    cmd = chargen_cmd("train", str(data / "a.txt"), str(data / "b.txt"), "--val-files", "1", "--max-time",
                      str(budget), "--out", str(out), "--json", "--device", "cpu", "--sample-chars", "0", *flags)
    t0 = time.perf_counter()
    summary = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    return {"summary": summary, "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=float, nargs="+", default=[60.0, 300.0])
    parser.add_argument("--corpora", nargs="+", default=None, help="names in corpora/finetune (default: all)")
    parser.add_argument("--arms", nargs="+", default=["scratch", "base"], help="scratch, or a model for --init")
    args, extra = parser.parse_known_args()  # the rest: chargen train flags for the --init arms
    words = {w.strip().lower() for w in WORDS.read_text(encoding="utf-8").splitlines() if w.strip()}
    paths = sorted(p for p in CORPORA.iterdir() if p.is_file() and p != WORDS)
    if args.corpora:
        paths = [p for p in paths if p.stem in args.corpora]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            data = split_corpus(path, Path(tmp) / path.stem)
            for budget in args.budgets:
                row = {"corpus": path.stem, "kb": round(path.stat().st_size / 1000), "budget_s": budget}
                for arm in args.arms:
                    out = Path(tmp) / f"{path.stem}-{budget:g}-{arm}"
                    result = run(arm, data, budget, out, extra)
                    best = out / "best.pt"
                    row[f"{arm}_loss"] = round(per_char_loss(best, data / "b.txt"), 4)
                    row[f"{arm}_words"] = round(real_word_share(best, words), 3)
                    row[f"{arm}_steps"] = result["summary"]["steps"]
                    print(json.dumps({"corpus": path.stem, "budget": budget, "arm": arm, **result}), flush=True)
                if "scratch" in args.arms:
                    for arm in args.arms[1:]:
                        row[f"{arm}_gain"] = f"{100 * (1 - row[f'{arm}_loss'] / row['scratch_loss']):.1f}%"
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\nmachine: {machine()}; date: {time.strftime('%Y-%m-%d %H:%M')}; extra flags: {extra}")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")


if __name__ == "__main__":
    sys.exit(main())
