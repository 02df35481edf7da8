"""Helpers shared by the benchmark scripts: the corpus and the baseline loop, running commands, machine facts.

Everything a benchmark needs is in the repository: the yardstick is benchmarks/baseline.py and the
default corpus is corpora/shakespeare.txt (built by scripts/build_shakespeare.py). A file outside the
clone, such as a copy of tinyshakespeare passed with --corpus, is only ever an optional cross-check.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # scripts that import chargen find this checkout, installed or not
BASELINE = ROOT / "benchmarks" / "baseline.py"
CORPUS = ROOT / "corpora" / "shakespeare.txt"


def existing_file(value: str) -> Path:
    """An argparse type: a path that must name a file, so a missing corpus is one line, not a traceback."""
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


def add_source_args(p: argparse.ArgumentParser, corpus: bool = True, reference: bool = True) -> None:
    """--corpus (default corpora/shakespeare.txt) and, where a script runs the yardstick, --reference."""
    if corpus:
        p.add_argument("--corpus", type=existing_file, default=CORPUS,
                       help="text file (default: corpora/shakespeare.txt; a copy of tinyshakespeare cross-checks "
                            "figures made with it)")
    if reference:
        p.add_argument("--reference", type=existing_file, default=BASELINE,
                       help="the yardstick loop: a script with baseline.py's CLI and JSON keys "
                            "(default: benchmarks/baseline.py)")


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def sampling_model(cell: str, layers: int, hidden: int):
    """A freshly initialised model (seed 0) over a 65-character vocabulary, and that vocabulary, as
    the sampling benchmarks use: speed does not depend on the weights."""
    import torch

    from chargen.data import Vocab
    from chargen.model import CharRNN, ModelConfig

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=65, cell=cell, num_layers=layers, hidden_size=hidden), "torch")
    return model, Vocab(tuple(chr(c) for c in range(40, 105)))


def run_json(cmd: list[str], cwd: Path = ROOT) -> tuple[dict, float]:
    """Run a command, return its last stdout line parsed as JSON and the wall seconds it took."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]), time.perf_counter() - t0


def chargen_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chargen", *args]


def reference_cmd(*args: str, script: Path = BASELINE) -> list[str]:
    return [sys.executable, str(script), *args]


def report(rows: list[dict]) -> None:
    """Print a Markdown table of result rows (and the rows as JSON lines for scripts)."""
    print(f"\nmachine: {machine()}; date: {time.strftime('%Y-%m-%d')}")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in keys) + " |")
    for r in rows:
        print(json.dumps(r))
