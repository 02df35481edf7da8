"""Prepare once, stream forever: a corpus file of any size becomes a compact array of ids on disk.

Two passes over the file in pieces (utf8.py counts the characters, then encodes them),
never holding the text in memory; the result is cached and memory-mapped by training.
This module owns the cache: where it lives, when it is current, how it is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ChargenError
from .text import read_raw
from .utf8 import BOM, Encoder, Progress, chunks, count_chars
from .vocab import Vocab

CACHE_VERSION = 1
FINGERPRINT_BYTES = 1 << 20  # the head and the tail hashed to notice an edit that keeps size and mtime


@dataclass(frozen=True)
class PreparedCorpus:
    """A corpus encoded on disk: `ids` is a read-only memory map (N,) of uint8, uint16 or uint32."""

    vocab: Vocab
    ids: np.ndarray
    counts: dict[str, int]  # occurrences of each character of the file, before rare ones became unknown
    cache_dir: Path
    cache_hit: bool
    seconds: float  # time spent preparing (or opening the cache)


def cache_root() -> Path:
    """$CHARGEN_CACHE, else $XDG_CACHE_HOME/chargen, else ~/.cache/chargen."""
    if os.environ.get("CHARGEN_CACHE"):
        return Path(os.environ["CHARGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "chargen"


def fingerprint(path: Path) -> dict:
    """Size, mtime and a hash of the first and last MiB: cheap to compute, and any ordinary
    edit (appending, truncating, rewriting the head or tail, touching the file) changes it."""
    st = path.stat()
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(FINGERPRINT_BYTES))
        f.seek(max(0, st.st_size - FINGERPRINT_BYTES))
        h.update(f.read(FINGERPRINT_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_tail_blake2b": h.hexdigest()}


def prepare_corpus(path: str | os.PathLike, min_char_count: int = 1, cache: str | os.PathLike | None = None,
                   progress: Progress | None = None) -> PreparedCorpus:
    """The encoded ids and vocabulary of the UTF-8 file at `path`, from the cache when it is current.

    Characters seen fewer than `min_char_count` times become the vocabulary's unknown
    symbol, which the vocabulary holds even when no character is that rare. Raises ChargenError
    for a missing, empty, non-UTF-8 or unreadable file, or an unwritable cache folder.
    """
    t0 = time.perf_counter()
    path = _check_file(Path(path))
    if not isinstance(min_char_count, int) or min_char_count < 1:
        raise ChargenError(f"min_char_count must be a positive integer, got {min_char_count!r}",
                           "try --min-char-count 1 (keep every character)")
    key = hashlib.blake2b(f"{path.resolve()}\0{min_char_count}".encode(), digest_size=10).hexdigest()
    folder = Path(cache) if cache is not None else cache_root()
    folder = folder / f"{path.stem[:40]}-{key}"
    stamp = fingerprint(path)
    found = _open_cached(folder, stamp)
    if found is not None:
        return PreparedCorpus(*found, folder, True, time.perf_counter() - t0)
    counts = count_chars(path, progress)
    vocab = Vocab.from_counts(counts, min_char_count)
    ids = _write_cache(folder, path, vocab, counts, stamp, min_char_count, progress)
    if fingerprint(path) != stamp:
        raise ChargenError(f"{path} changed while it was being prepared", "wait until it is written, then train again")
    return PreparedCorpus(vocab, ids, counts, folder, False, time.perf_counter() - t0)


def _check_file(path: Path) -> Path:
    if not read_raw(path, len(BOM) + 1).removeprefix(BOM):
        raise ChargenError(f"{path} is empty", "train on a file that contains text")
    return path


def _open_cached(folder: Path, stamp: dict) -> tuple[Vocab, np.ndarray, dict[str, int]] | None:
    """The cached corpus in `folder` if it was made from a file with this fingerprint, else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != stamp:
            return None
        vocab = Vocab(tuple(meta["chars"]), meta["unk"])
        if vocab.unk is None:  # written before every vocabulary had the unknown symbol: add it
            old, vocab = vocab.chars, vocab.with_unknown()
            if vocab.chars[: len(old)] != old:
                return None  # U+FFFD went before characters above it and renumbered them: rebuild
        dtype = np.dtype(meta["dtype"])
        ids_path = folder / "ids.bin"
        if ids_path.stat().st_size != meta["length"] * dtype.itemsize:
            return None
        return vocab, np.memmap(ids_path, dtype=dtype, mode="r"), meta["counts"]
    except (OSError, ValueError, KeyError, TypeError, ChargenError):
        return None  # missing or damaged: rebuild it


def _write_cache(folder: Path, path: Path, vocab: Vocab, counts: dict[str, int], stamp: dict,
                 min_char_count: int, progress: Progress | None) -> np.ndarray:
    """Encode the file (the second pass) into folder/ids.bin and record it in folder/meta.json.

    meta.json is removed first and written last, each file by rename, so a reader
    sees either a complete cache or none.
    """
    encoder = Encoder(vocab, max(ord(c) for c in counts), path)
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ids.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            length = _encode_into(f, path, encoder, progress)
        os.replace(tmp, folder / "ids.bin")
        tmp = None
        meta = {"version": CACHE_VERSION, "source": str(path.resolve()), "fingerprint": stamp,
                "min_char_count": min_char_count, "chars": list(vocab.chars), "unk": vocab.unk,
                "dtype": encoder.dtype.name, "length": length, "counts": counts}
        _write_json(folder / "meta.json", meta)
    except OSError as e:
        raise ChargenError(f"cannot write the corpus cache in {folder}: {e.strerror or e}",
                           "free some disk space, or set CHARGEN_CACHE to a writable folder") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return np.memmap(folder / "ids.bin", dtype=encoder.dtype, mode="r")


def _encode_into(f, path: Path, encoder: Encoder, progress: Progress | None) -> int:
    """Write the ids of every piece of the file to `f`; returns how many were written.

    A writer thread puts piece k on disk while piece k + 1 is encoded: for a large
    file the disk is as slow as the encoding, so overlapping them nearly halves the time.
    """
    length, pending = 0, None
    with ThreadPoolExecutor(1) as writer:
        for offset, data in chunks(path):
            ids = encoder.encode(data, offset)  # (T,)
            if pending is not None:
                pending.result()
            pending = writer.submit(f.write, ids.data)  # ids stays alive in the closure until written
            length += len(ids)
            if progress:
                progress(len(data))
        if pending is not None:
            pending.result()
    return length


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".meta.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
