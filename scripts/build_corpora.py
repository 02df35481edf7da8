#!/usr/bin/env python3
"""Rebuild corpora/korean_constitution.txt and corpora/python_stdlib.txt.

Usage: python scripts/build_corpora.py [--konlpy-wheel FILE]

- korean_constitution.txt: konlpy/data/corpus/kolaw/constitution.txt from the PyPI
  package konlpy (fetched with `pip download konlpy==0.6.0` unless a wheel is given),
  copied byte for byte.
- python_stdlib.txt: the top-level modules (*.py) of the running Python's standard
  library in name order, each after a `# ---- NAME ----` line, until 2,000,000
  characters are reached (whole files only).
"""
import argparse
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

CONSTITUTION = "konlpy/data/corpus/kolaw/constitution.txt"
STDLIB_LIMIT = 2_000_000


def korean(wheel: Path | None, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, "konlpy==0.6.0"],
                           check=True)
            wheel = next(Path(tmp).glob("konlpy-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read(CONSTITUTION)
    out.write_bytes(data)
    print(f"wrote {out}: {len(data.decode('utf-8')):,} characters")


def python_stdlib(out: Path) -> None:
    parts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = f"# ---- {path.name} ----\n" + path.read_text(encoding="utf-8")
        if total + len(text) > STDLIB_LIMIT:
            break
        parts.append(text)
        total += len(text)
    out.write_text("".join(parts), encoding="utf-8", newline="")
    print(f"wrote {out}: {len(parts)} modules, {total:,} characters (Python {sys.version.split()[0]})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--konlpy-wheel", type=Path, help="a local konlpy-0.6.0 wheel (default: pip download it)")
    a = p.parse_args()
    korean(a.konlpy_wheel, Path("corpora/korean_constitution.txt"))
    python_stdlib(Path("corpora/python_stdlib.txt"))


if __name__ == "__main__":
    main()
