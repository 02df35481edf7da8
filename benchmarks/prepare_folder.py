#!/usr/bin/env python3
"""Preparing a folder of many files: prepare_corpus's speed (MB/s) and peak memory (RSS).

    python benchmarks/prepare_folder.py --dir /tmp/chargen-folder [--total-mb 1000] [--files 10000]
                                        [--vocab chars,bytes]

Writes --files text files of --total-mb MB in all under --dir (sizes spread from half to one and
a half times the mean, in nested folders; about one file in eight holds non-ASCII text), once:
an existing folder of the same shape is reused. Then, for each vocabulary, a child process that
does nothing but import chargen and prepare the folder into a fresh cache reports its seconds (and
its CPU seconds: on a busy machine the wall time says more about the neighbours) and its peak RSS
(getrusage ru_maxrss). The folder was just written or read, so it is in the page cache: the
figures are chargen's, not the disk's. Targets: >= 100 MB/s, peak RSS < 512 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CORPUS, ROOT, report

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have "
         "an they you were her she there been one all we their has would when if so no will can more do said").split()
OTHER = ["café", "naïve", "Straße", "日本語の文章", "한국어 문장", "Ελληνικά", "emoji 😀 ok", "Ünïcödé"]


def base_text() -> str:
    """About 1 MB of English: the head of corpora/shakespeare.txt, else generated words."""
    if CORPUS.is_file():
        return CORPUS.read_text(encoding="utf-8")[:1_000_000]
    rng = random.Random(0)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(16_000))


def make_folder(folder: Path, total_mb: float, files: int) -> None:
    """Write the folder unless it already holds one of this shape (its shape.json says so)."""
    shape = {"total_mb": total_mb, "files": files, "version": 2}
    marker = folder / "shape.json"
    if marker.is_file() and json.loads(marker.read_text()) == shape:
        return
    text = base_text().encode("utf-8")
    rng = random.Random(1)
    mean = total_mb * 1e6 / files
    for i in range(files):
        size = int(mean * rng.uniform(0.5, 1.5))
        start = rng.randrange(len(text))
        body = (text[start:] + text)[:size]
        if i % 8 == 0:  # some files with non-ASCII text, cut on a character boundary
            body = (rng.choice(OTHER) + "\n").encode("utf-8") + body
            body = body[: len(body.decode("utf-8", "ignore").encode("utf-8"))]
        path = folder / f"part{i // 1000:02d}" / f"sub{i % 10}" / f"file{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    marker.write_text(json.dumps(shape))


def child(folder: str, vocab: str) -> None:
    """Prepare `folder` into a fresh cache and print one JSON line: seconds, bytes, peak RSS."""
    from chargen.data.cache import prepare_corpus
    from chargen.data.sources import Sources

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB (Linux reports KiB)
    sources = Sources((folder,), exclude=("shape.json",))
    size = sum(os.path.getsize(f.path) for f in sources.files())
    with tempfile.TemporaryDirectory() as cache:
        t0, c0 = time.perf_counter(), time.process_time()
        p = prepare_corpus(sources, cache=cache, vocab=vocab)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert not p.cache_hit and len(p.files) > 0
        files, ids = len(p.files), len(p.ids)
        del p
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"vocab": vocab, "files": files, "mb": round(size / 1e6, 1), "ids": ids,
                      "seconds": round(seconds, 2), "mb_per_s": round(size / 1e6 / seconds, 1),
                      "cpu_s": round(cpu, 2),
                      "peak_rss_mb": round(peak), "rss_after_import_mb": round(before)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="Folder to write the files into (reused).")
    p.add_argument("--total-mb", type=float, default=1000.0)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--vocab", default="chars,bytes", help="Comma-separated vocabularies to time.")
    p.add_argument("--child", nargs=2, metavar=("FOLDER", "VOCAB"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(*a.child)
        return
    t0 = time.perf_counter()
    make_folder(a.dir, a.total_mb, a.files)
    print(f"folder ready in {time.perf_counter() - t0:.1f} s: {a.dir}", file=sys.stderr)
    rows = []
    for vocab in a.vocab.split(","):
        out = subprocess.run([sys.executable, __file__, "--dir", str(a.dir), "--child", str(a.dir), vocab],
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        row["targets_met"] = row["mb_per_s"] >= 100 and row["peak_rss_mb"] < 512
        rows.append(row)
    report(rows)


if __name__ == "__main__":
    main()
