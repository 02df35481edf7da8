"""Reading UTF-8 text of any size in pieces, at the speed of numpy rather than Python:
blocks cut into pieces on character boundaries, the first pass that counts characters (checking
the encoding on the way), and the lookup tables of the second pass that turns text into ids.
A slab of bytes may hold pieces of several files; its Parts say where each came from.
"""
from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ChargenError
from .vocab import Vocab

BLOCK_BYTES = 8 << 20  # 8 MiB read at a time, about a slab: a few arrays of this size is all a pass holds
BOM = b"\xef\xbb\xbf"
CONTINUATION = bytes(range(0x80, 0xC0))  # the bytes that continue a multi-byte character
Progress = Callable[[int], None]  # called with the number of bytes just processed
Part = tuple[int, int, str, int]  # a piece of a slab: its (start, stop) there, its file, its byte offset in the file


def read_pieces(path: str | Path, size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of the file, each ending on a character boundary, BOM dropped."""
    return pieces(read_blocks(path, size or BLOCK_BYTES))


def read_blocks(path: str | Path, size: int) -> Iterator[bytes]:
    """The file's bytes in blocks of at most `size`, up to the length it has when opened (a file that
    changes meanwhile is the fingerprint's to notice). Low-level reads sized by that length: with
    ten thousand small files, Python's buffered reader (which sets aside `size` bytes for every
    read) costs more than the reading."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        left = os.fstat(fd).st_size
        while left > 0 and (block := os.read(fd, min(size, left))):
            left -= len(block)
            yield block
    finally:
        os.close(fd)


def pieces(blocks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of a file read in `blocks`, each ending on a character boundary,
    BOM dropped.

    A multi-byte UTF-8 character cut by the read size is carried over whole to the
    next piece, so every piece decodes on its own.
    """
    carry, offset = b"", 0
    for block in blocks:
        if offset == 0 and not carry and block.startswith(BOM):
            block, offset = block[len(BOM):], len(BOM)
        data = carry + block if carry else block
        cut = _boundary(data)
        if cut:  # a read shorter than one character yields nothing yet
            yield offset, data[:cut] if cut < len(data) else data
        offset, carry = offset + cut, data[cut:]
    if carry:
        yield offset, carry  # a truncated character at the very end: decoding reports it


def _boundary(data: bytes) -> int:
    """Length of the longest prefix of `data` that ends on a UTF-8 character boundary."""
    i = len(data) - 1
    while i >= 0 and len(data) - i < 4 and data[i] & 0xC0 == 0x80:  # continuation bytes
        i -= 1
    if i < 0:
        return len(data)
    lead = data[i]
    need = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return len(data) if len(data) - i >= need else i


class NonAscii(NamedTuple):
    """Where a slab's non-ASCII characters are: the positions of their first bytes and of their
    other (continuation) bytes, and their code points (uint32), in order."""

    lead: np.ndarray
    cont: np.ndarray
    cps: np.ndarray


def _non_ascii(data: bytes, parts: list[Part]) -> NonAscii:
    """The non-ASCII characters of a slab; checks the slab is UTF-8 on the way (ChargenError
    with the file and byte offset of the first bad byte).

    The bytes of a multi-byte character are all >= 0x80 and ASCII bytes never are, so
    keeping only those bytes leaves exactly the non-ASCII characters. The slab is valid
    when that remainder decodes and every run of such bytes starts a character: then no
    character is cut short by an ASCII byte. One pass over the slab finds those bytes;
    the rest works on them alone, which is much faster than decoding the whole slab.
    Pieces of different files are kept apart by the ASCII file separator, so a character
    cut at the end of one file is never completed by the start of the next.
    """
    a = np.frombuffer(data, np.uint8)
    high = np.flatnonzero(a >= 0x80)  # (m,) positions of the non-ASCII bytes
    b = a[high]  # (m,)
    run_start = np.diff(high, prepend=-2) != 1  # (m,) the first byte of each run of them
    bad = bool((run_start & (b < 0xC0)).any())  # a run that opens with a continuation byte
    try:
        rest = b.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        bad = True
    if bad:
        _not_utf8(data, parts)
    is_lead = b >= 0xC0
    return NonAscii(high[is_lead], high[~is_lead], np.frombuffer(rest.encode("utf-32-le"), np.uint32))


def _not_utf8(data: bytes, parts: list[Part]) -> None:
    """Raise ChargenError naming the file and offset of the first byte of the slab that is not UTF-8."""
    for start, stop, path, offset in parts:
        try:  # decoding each piece finds the exact place; only done on failure
            data[start:stop].decode("utf-8")
        except UnicodeDecodeError as e:
            name, suffix = shlex.quote(Path(path).name), Path(path).suffix
            if _binary(path):
                every = f" (every *{suffix} file: --exclude {shlex.quote('*' + suffix)})" if suffix else ""
                raise ChargenError(f"{path} is a binary file, not text (it holds a NUL byte in its first 8 KB)",
                                   f"leave it out with --exclude {name}{every}, or train on bytes with --vocab bytes") \
                    from None
            raise ChargenError(f"{path} is not UTF-8 text (bad byte at offset {offset + e.start})",
                               "convert it first, e.g. iconv -f latin1 -t utf-8 IN > OUT, leave it out with "
                               f"--exclude {name}, or train on its bytes with --vocab bytes") from None
    raise AssertionError("a slab that is not UTF-8 has a piece that is not")


def _binary(path: str) -> bool:
    """Whether a file is clearly not text: a NUL byte in its first 8 KB (git's test)."""
    try:
        with open(path, "rb") as f:
            return b"\0" in f.read(8192)
    except OSError:
        return False


def byte_counts(data: bytes) -> np.ndarray:
    """How often each byte value occurs in `data` (256,). Counted in pairs (bytes 2k and 2k + 1 as one
    16-bit value, 65,536 bins): half the elements for numpy's bincount, about twice as fast as
    counting bytes one by one, and it takes no thread from a busy machine as torch's does."""
    a = np.frombuffer(data, np.uint8)
    pairs = np.bincount(a[: len(a) // 2 * 2].view(np.uint16), minlength=1 << 16).reshape(256, 256)  # (hi, lo)
    counts = pairs.sum(0) + pairs.sum(1)  # (256,) every byte is the low or the high one of its pair
    if len(a) % 2:
        counts[a[-1]] += 1
    return counts


def count_chars(slabs: Iterable[tuple[bytes, list[Part]]], progress: Progress | None = None) -> dict[str, int]:
    """How often each character occurs in the slabs (the first pass). Also checks they are UTF-8."""
    ascii_counts = np.zeros(256, dtype=np.int64)
    other: dict[int, int] = {}
    for data, parts in slabs:
        if not data:
            continue
        ascii_counts += byte_counts(data)
        if not data.isascii():
            cps, n = np.unique(_non_ascii(data, parts).cps, return_counts=True)
            for c, k in zip(cps.tolist(), n.tolist()):
                other[c] = other.get(c, 0) + k
        if progress:
            progress(len(data))
    counts = {chr(c): int(n) for c, n in enumerate(ascii_counts[:128].tolist()) if n}
    counts.update({chr(c): n for c, n in other.items()})
    return counts


def id_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id."""
    return np.dtype(np.uint8 if vocab_size <= 1 << 8 else np.uint16 if vocab_size <= 1 << 16 else np.uint32)


class Encoder:
    """Text pieces to ids through lookup tables: a 256-byte table for ASCII, an array for the rest.

    `top` is the largest code point the text holds; every character the vocabulary
    lacks (a rare one) maps to its unknown symbol.
    """

    def __init__(self, vocab: Vocab, top: int) -> None:
        self.dtype = id_dtype(len(vocab))
        fill = 0 if vocab.unk_id is None else vocab.unk_id
        self.table = np.full(max(top, 127) + 1, fill, dtype=self.dtype)  # code point -> id
        for i, c in enumerate(vocab.chars):
            if ord(c) <= top:
                self.table[ord(c)] = i
        # Every ASCII character sorts before every other, so ASCII ids are below 128 and fit a byte table.
        self.ascii = self.table[:128].astype(np.uint8).tobytes() + bytes(128)

    def encode(self, data: bytes, parts: list[Part], ends: Sequence[int] = ()) -> tuple[np.ndarray, list[int]]:
        """Ids (T,) of a slab whose pieces (`parts`) each end on a character boundary, and the
        number of ids before each of the byte positions `ends` (character boundaries)."""
        if data.isascii():
            return np.frombuffer(data.translate(self.ascii), np.uint8).astype(self.dtype, copy=False), list(ends)
        found = _non_ascii(data, parts)
        # One byte per character: ASCII bytes become their ids, the first byte of any other a placeholder,
        # the continuation bytes go. The placeholders then take their characters' ids.
        ids = np.frombuffer(bytearray(data.translate(self.ascii, CONTINUATION)), np.uint8)  # (T,)
        ids = ids if self.dtype == np.uint8 else ids.astype(self.dtype)
        ids[found.lead - np.searchsorted(found.cont, found.lead)] = self.table[found.cps]
        before = np.searchsorted(found.cont, np.asarray(ends, dtype=np.int64))  # continuation bytes before each end
        return ids, [e - int(k) for e, k in zip(ends, before)]
