"""Prepare once, stream forever: a corpus of any size (one file, or many) becomes a compact
array of ids on disk.

A "chars" corpus takes two passes over its files in slabs (utf8.py counts the characters,
then encodes them), a "bytes" corpus one (its ids are its bytes), never holding the text
in memory; the result is cached and memory-mapped by training. This module owns the
cache: where it lives, when it is current, how it is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..errors import ChargenError
from ..fileio import atomic_write
from .sources import FILE_SEPARATOR, SourceFile, Sources
from .stream import Slab, slabs, unreadable
from .utf8 import Encoder, Progress, count_chars
from .vocab import KINDS, Vocab

CACHE_VERSION = 2  # 2: corpora of several files, the vocabulary's kind, where each file ends
FINGERPRINT_BYTES = 1 << 20  # the head and the tail hashed to notice an edit that keeps size and mtime
CorpusPaths = Sources | str | os.PathLike | list | tuple  # what names a corpus: one path, a list of them, or Sources


@dataclass(frozen=True)
class PreparedCorpus:
    """A corpus encoded on disk: `ids` is a read-only memory map (N,) of uint8, uint16 or uint32.

    With several files, each is followed by the file separator; `ends[i]` is the id just
    past file i (and its separator), so files[i] is ids[ends[i-1]:ends[i]].
    """

    vocab: Vocab
    ids: np.ndarray
    counts: dict[str, int]  # occurrences of each character, before rare ones became unknown; {} for bytes
    cache_dir: Path
    cache_hit: bool
    seconds: float  # time spent preparing (or opening the cache)
    files: tuple[str, ...] = ()  # the files, in the order joined
    ends: tuple[int, ...] = ()


def cache_root() -> Path:
    """$CHARGEN_CACHE, else $XDG_CACHE_HOME/chargen, else ~/.cache/chargen."""
    if os.environ.get("CHARGEN_CACHE"):
        return Path(os.environ["CHARGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "chargen"


def fingerprint(files: list[SourceFile]) -> dict:
    """Every file's absolute path, size and mtime; for a corpus of one file also a hash of its first
    and last MiB. Cheap to compute, and any ordinary edit (adding, removing or renaming a file,
    appending, truncating, touching; with one file, rewriting its head or tail in place) changes it."""
    stamp: dict[str, Any] = {"files": [[os.path.abspath(f.path), *_stat(f.path)] for f in files]}
    if len(files) == 1:
        h = hashlib.blake2b(digest_size=16)
        try:
            with open(files[0].path, "rb") as f:
                h.update(f.read(FINGERPRINT_BYTES))
                f.seek(max(0, stamp["files"][0][1] - FINGERPRINT_BYTES))
                h.update(f.read(FINGERPRINT_BYTES))
        except OSError as e:
            unreadable(files[0].path, e)
        stamp["head_tail_blake2b"] = h.hexdigest()
    return stamp


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        unreadable(path, e)
    return st.st_size, st.st_mtime_ns



def work_bytes(corpus: CorpusPaths, vocab: str = "chars") -> int:
    """The bytes that prepare_corpus reports to its `progress` when it prepares `corpus`: its size
    (with separators) once per pass."""
    files = Sources.of(corpus).files()
    size = sum(os.path.getsize(f.path) for f in files) + (len(files) if len(files) > 1 else 0)
    return size * (1 if vocab == "bytes" else 2)


def prepare_corpus(corpus: CorpusPaths, min_char_count: int = 1, cache: str | os.PathLike | None = None,
                   progress: Progress | None = None, vocab: str = "chars") -> PreparedCorpus:
    """The encoded ids and vocabulary of a corpus, from the cache when it is current.

    `corpus` is a file, a folder, a glob pattern, a list of them, or Sources (with include
    and exclude patterns): see Sources. One file is read as it is; several are joined in
    Sources' order, each followed by FILE_SEPARATOR (U+001C), which the vocabulary always
    holds. With `vocab` "chars" the files must be UTF-8 (a BOM is dropped) and characters
    seen fewer than `min_char_count` times become the unknown symbol, which the vocabulary
    holds even when no character is that rare; with "bytes" the ids are the files' bytes as
    stored, any bytes at all. Raises ChargenError for a missing path, an empty corpus, a file
    that is not UTF-8 (for chars), unreadable or changes meanwhile, or an unwritable cache.
    """
    t0 = time.perf_counter()
    sources = Sources.of(corpus)
    if vocab not in KINDS:
        raise ChargenError(f"unknown vocabulary {vocab!r}", "use --vocab chars or --vocab bytes")
    if not isinstance(min_char_count, int) or min_char_count < 1:
        raise ChargenError(f"min_char_count must be a positive integer, got {min_char_count!r}",
                           "try --min-char-count 1 (keep every character)")
    if vocab == "bytes" and min_char_count != 1:
        raise ChargenError("min_char_count applies to a vocabulary of characters; a bytes vocabulary keeps all 256",
                           "drop --min-char-count, or use --vocab chars")
    files = sources.files()
    key = hashlib.blake2b(json.dumps([vocab, min_char_count, sources.key()]).encode(), digest_size=10).hexdigest()
    folder = (Path(cache) if cache is not None else cache_root()) / f"{sources.name[:40]}-{key}"
    stamp = fingerprint(files)
    found = _open_cached(folder, stamp, vocab)
    if found is not None:
        vocab_, ids, counts_, names, ends = found
        return PreparedCorpus(vocab_, ids, counts_, folder, True, time.perf_counter() - t0, names, ends)
    several = len(files) > 1
    if vocab == "bytes":
        _check_not_empty(sum(size for _, size, _ in stamp["files"]), sources, several)
        kept, counts = Vocab.for_bytes(), None
    else:
        counts = count_chars(((s.data, s.parts) for s in slabs(files, vocab, several)), progress)
        _check_not_empty(sum(counts.values()) - counts.get(FILE_SEPARATOR, 0) * several, sources, several)
        kept = Vocab.from_counts(counts, min_char_count, FILE_SEPARATOR if several else "")
    ids, counts, ends = _write_cache(folder, files, kept, counts, stamp, min_char_count, progress)
    _check_unchanged(files, stamp)
    return PreparedCorpus(kept, ids, counts, folder, False, time.perf_counter() - t0,
                          tuple(f.path for f in files), ends)


def _check_not_empty(content: int, sources: Sources, several: bool) -> None:
    """ChargenError when the files hold no `content` (characters, or bytes) besides the separators."""
    if not content:
        which = f"every file of {sources} is empty" if several else f"{sources} is empty"
        raise ChargenError(which, "train on a file that contains text")


def _check_unchanged(files: list[SourceFile], stamp: dict) -> None:
    now = fingerprint(files)
    if now != stamp:
        changed = next((f.path for f, a, b in zip(files, stamp["files"], now["files"]) if a != b), files[0].path)
        raise ChargenError(f"{changed} changed while it was being prepared",
                           "wait until it is written, then train again")


def _open_cached(folder: Path, stamp: dict, kind: str) -> tuple[Vocab, np.ndarray, dict[str, int], tuple[str, ...],
                                                               tuple[int, ...]] | None:
    """(vocab, ids, counts, files, ends) of the cached corpus in `folder` if it was made from files
    with this fingerprint, else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION or meta.get("fingerprint") != stamp or meta.get("kind") != kind:
            return None
        vocab = Vocab(tuple(meta["chars"]), meta["unk"], kind)
        if vocab.unk is None and kind == "chars":  # written before every vocabulary had the unknown symbol
            old, vocab = vocab.chars, vocab.with_unknown()
            if vocab.chars[: len(old)] != old:
                return None  # U+FFFD went before characters above it and renumbered them: rebuild
        dtype = np.dtype(meta["dtype"])
        ids_path = folder / "ids.bin"
        if ids_path.stat().st_size != meta["length"] * dtype.itemsize:
            return None
        ids = np.memmap(ids_path, dtype=dtype, mode="r") if meta["length"] else np.zeros(0, dtype)
        return vocab, ids, meta["counts"], tuple(meta["files"]), tuple(meta["ends"])
    except (OSError, ValueError, KeyError, TypeError, ChargenError):
        return None  # missing or damaged: rebuild it


def _write_cache(folder: Path, files: list[SourceFile], vocab: Vocab, counts: dict[str, int] | None, stamp: dict,
                 min_char_count: int, progress: Progress | None) -> tuple[np.ndarray, dict[str, int], tuple[int, ...]]:
    """Encode the files (a chars corpus's second pass, a bytes corpus's only one) into folder/ids.bin
    and record it in folder/meta.json; returns the ids, the counts and the ends of the files.

    meta.json is removed first and written last, each file by rename, so a reader
    sees either a complete cache or none.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").unlink(missing_ok=True)
        stream = slabs(files, vocab.kind, len(files) > 1)
        with atomic_write(folder / "ids.bin", "wb") as f:
            if vocab.kind == "bytes":
                length, ends, counts = _copy_into(f, stream, progress)
                dtype = np.dtype(np.uint8)
            else:
                encoder = Encoder(vocab, max(ord(c) for c in cast(dict[str, int], counts)))  # chars: counted
                length, ends = _encode_into(f, stream, encoder, progress)
                dtype = encoder.dtype
        meta = {"version": CACHE_VERSION, "kind": vocab.kind, "fingerprint": stamp,
                "min_char_count": min_char_count, "chars": list(vocab.chars), "unk": vocab.unk,
                "dtype": dtype.name, "length": length, "counts": counts,
                "files": [f.path for f in files], "ends": ends}
        _write_json(folder / "meta.json", meta)
    except OSError as e:
        raise ChargenError(f"cannot write the corpus cache in {folder}: {e.strerror or e}",
                           "free some disk space, or set CHARGEN_CACHE to a writable folder") from None
    ids = np.memmap(folder / "ids.bin", dtype=dtype, mode="r") if length else np.zeros(0, dtype)
    return ids, cast(dict[str, int], counts), tuple(ends)


def _encode_into(f, stream: Iterator[Slab], encoder: Encoder, progress: Progress | None) -> tuple[int, list[int]]:
    """Write the ids of every slab to `f`; returns how many were written and where each file ends.

    A writer thread puts slab k on disk while slab k + 1 is encoded: for a large
    file the disk is as slow as the encoding, so overlapping them nearly halves the time.
    """
    length, ends, pending = 0, [], None
    with ThreadPoolExecutor(1) as writer:
        for slab in stream:
            ids, id_ends = encoder.encode(slab.data, slab.parts, slab.ends)  # (T,)
            ends += [length + e for e in id_ends]
            if pending is not None:
                pending.result()
            pending = writer.submit(f.write, ids.data)  # ids stays alive in the closure until written
            length += len(ids)
            if progress:
                progress(len(slab.data))
        if pending is not None:
            pending.result()
    return length, ends


def _copy_into(f, stream: Iterator[Slab], progress: Progress | None) -> tuple[int, list[int], dict[str, int]]:
    """Write every slab's bytes to `f` as they are (a bytes corpus's ids); returns how many were
    written, where each file ends, and no counts (every byte is in the vocabulary: none is rare)."""
    length, ends, pending = 0, [], None
    with ThreadPoolExecutor(1) as writer:
        for slab in stream:
            if pending is not None:
                pending.result()
            pending = writer.submit(f.write, slab.data)
            ends += [length + e for e in slab.ends]
            length += len(slab.data)
            if progress:
                progress(len(slab.data))
        if pending is not None:
            pending.result()
    return length, ends, {}


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
