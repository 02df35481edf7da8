#!/usr/bin/env python3
"""Rebuild corpora/names.txt: the surnames of the 1990 US census, one per line.

Usage: python scripts/build_names.py [--names-sdist FILE]

The surnames are the first column of names/dist.all.last in the PyPI package names
(fetched with `pip download names==0.3.0` unless its sdist is given), in the file's
order (most frequent first), spelled as the census lists them (capitals), each once.
"""
import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MEMBER = "names-0.3.0/names/dist.all.last"


def surnames(sdist: Path | None) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                            "names==0.3.0"], check=True)
            sdist = next(Path(tmp).glob("names-0.3.0.tar.gz"))
        with tarfile.open(sdist) as tar:
            lines = tar.extractfile(MEMBER).read().decode("ascii").splitlines()
    return list(dict.fromkeys(line.split()[0] for line in lines if line.strip()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--names-sdist", type=Path, help="a local names-0.3.0.tar.gz (default: pip download it)")
    a = p.parse_args()
    names = surnames(a.names_sdist)
    out = Path("corpora/names.txt")
    out.write_text("".join(n + "\n" for n in names), encoding="utf-8", newline="")
    print(f"wrote {out}: {len(names):,} names, {sum(map(len, names)):,} letters")


if __name__ == "__main__":
    main()
