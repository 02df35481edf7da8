#!/usr/bin/env python3
"""Scale: preparing a 1 GB corpus, training on it in bounded memory, and the cache hit.

    python benchmarks/scale.py [--gb 1.0] [--steps 200] [--ref-mb 50] [--skip-reference] [--keep DIR]
                               [--corpus FILE] [--reference SCRIPT]

Builds a mixed corpus (the shipped Shakespeare, Python sources and Korean, repeated
block by block) in a scratch folder, then measures, each as its own process with its
peak resident memory (from wait4):
  1. `chargen prepare` cold: MB/s and peak RSS (targets: >= 100 MB/s, < 512 MB);
  2. `chargen prepare` again: the cache hit;
  3. `chargen train` on the big corpus and on --corpus (default corpora/shakespeare.txt, 5 MB),
     same model and steps: peak RSS of each (target: within 300 MB) and the time to the first step;
  4. the baseline loop (benchmarks/baseline.py, or --reference) and chargen on a --ref-mb slice,
     for the ratio of their peak RSS (the baseline holds the text as a Python string and an int64 tensor).
The corpus cache goes to the scratch folder (CHARGEN_CACHE), never to ~/.cache.
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT, add_source_args, chargen_cmd, reference_cmd, report

BLOCKS = ("shakespeare.txt", "python_stdlib.txt", "korean_constitution.txt")


def build_corpus(path: Path, size: int) -> None:
    """Write the shipped corpora in turn until the file holds `size` bytes (cut at a block end)."""
    blocks = [(ROOT / "corpora" / name).read_bytes() for name in BLOCKS]
    written = 0
    with open(path, "wb") as f:
        while written < size:
            for block in blocks:
                f.write(block)
                written += len(block)


def measure(cmd: list[str], env: dict) -> tuple[dict, float, float]:
    """Run a command; its last stdout line as JSON, wall seconds, and peak RSS in MB (wait4)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        lines = out.read().strip().splitlines()
        err.seek(0)
        err_tail = "\n".join(err.read().strip().splitlines()[-10:])
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err_tail}")
    return json.loads(lines[-1]), wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gb", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--ref-mb", type=float, default=50.0)
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--keep", type=Path, help="scratch folder to use and keep (default: a temporary one)")
    add_source_args(p)
    a = p.parse_args()
    work = a.keep or Path(tempfile.mkdtemp(prefix="chargen-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CHARGEN_CACHE": str(work / "cache")}
    rows = []
    try:
        big = work / "big.txt"
        if not big.exists():
            build_corpus(big, int(a.gb * 1e9))
        mb = big.stat().st_size / 1e6
        shutil.rmtree(work / "cache", ignore_errors=True)
        for label in ("prepare (cold)", "prepare (cache hit)"):
            out, wall, rss = measure(chargen_cmd("prepare", str(big), "--json"), env)
            rows.append({"run": label, "corpus_MB": round(mb), "wall_s": round(wall, 2), "peak_rss_MB": round(rss),
                         "detail": f"{out['seconds']} s in prepare, {out['mb_per_s']} MB/s, vocab {out['vocab_size']}, "
                                   f"{out['dtype']}"})
        train = ["--max-steps", str(a.steps), "--eval-every", str(a.steps // 2), "--json", "--device", "cpu"]
        for label, corpus, name in ((f"train, {a.gb:g} GB corpus", big, "run-big"),
                                    (f"train, {a.corpus.name}", a.corpus, "run-tiny")):
            out, wall, rss = measure(chargen_cmd("train", str(corpus), *train, "--out", str(work / name)), env)
            rows.append({"run": label, "corpus_MB": round(Path(corpus).stat().st_size / 1e6, 1),
                         "wall_s": round(wall, 1), "peak_rss_MB": round(rss),
                         "detail": f"startup {out['startup_s']} s, {out['steps']} steps, val {out['best_val_loss']}"})
        if not a.skip_reference:
            rows += reference_rows(big, work, a.ref_mb, env, a.reference)
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    report(rows)


def reference_rows(big: Path, work: Path, ref_mb: float, env: dict, script: Path) -> list[dict]:
    """The reference and chargen on the first `ref_mb` MB of the big corpus, a few seconds of training."""
    part = work / "part.txt"
    with open(big, "rb") as f:
        data = f.read(int(ref_mb * 1e6))
    part.write_bytes(data[: len(data.decode("utf-8", errors="ignore").encode("utf-8"))])
    rows = []
    _, wall, rss = measure(reference_cmd("train", "--corpus", str(part), "--cell", "gru", "--seconds", "5",
                                         "--eval-every", "1000", "--device", "cpu", script=script), env)
    rows.append({"run": f"reference train, {ref_mb:g} MB", "corpus_MB": ref_mb, "wall_s": round(wall, 1),
                 "peak_rss_MB": round(rss), "detail": "5 s of training"})
    out, wall, rss = measure(chargen_cmd("train", str(part), "--max-time", "5", "--eval-every", "100000",
                                         "--json", "--device", "cpu", "--out", str(work / "part-run")), env)
    rows.append({"run": f"chargen train, {ref_mb:g} MB", "corpus_MB": ref_mb, "wall_s": round(wall, 1),
                 "peak_rss_MB": round(rss),
                 "detail": f"5 s of training, startup {out['startup_s']} s (prepare included)"})
    return rows


if __name__ == "__main__":
    main()
