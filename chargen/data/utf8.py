"""Reading UTF-8 text of any size in pieces, at the speed of numpy rather than Python:
pieces cut on character boundaries, the first pass that counts characters (checking the
encoding on the way), and the lookup tables of the second pass that turns text into ids.
A batch of bytes may hold pieces of several files; its Parts say where each came from.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
import torch

from ..errors import ChargenError
from .vocab import Vocab

CHUNK_BYTES = 8 << 20  # 8 MiB of text at a time: a few arrays of this size is all a pass holds
BOM = b"\xef\xbb\xbf"
Progress = Callable[[int], None]  # called with the number of bytes just processed
Part = tuple[int, int, Path, int]  # a piece of a batch: its (start, stop) there, its file, its byte offset in the file


def chunks(path: Path, size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of the file, each ending on a character boundary, BOM dropped."""
    with open(path, "rb") as f:
        yield from pieces(f, size)


def pieces(f: BinaryIO, size: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of an open file, each ending on a character boundary, BOM dropped.

    A multi-byte UTF-8 character cut by the read size is carried over whole to the
    next piece, so every piece decodes on its own.
    """
    carry, offset, size = b"", 0, size or CHUNK_BYTES
    while block := f.read(size):
        if offset == 0 and block.startswith(BOM):
            block, offset = block[len(BOM):], len(BOM)
        data = carry + block
        cut = _boundary(data)
        if cut:  # a read shorter than one character yields nothing yet
            yield offset, data[:cut]
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


def _non_ascii(data: bytes, parts: list[Part]) -> np.ndarray:
    """Code points (uint32) of the characters of a batch that are not ASCII, in order; checks the
    batch is UTF-8 on the way (ChargenError with the file and byte offset of the first bad byte).

    The bytes of a multi-byte character are all >= 0x80 and ASCII bytes never are, so
    keeping only those bytes leaves exactly the non-ASCII characters. The piece is valid
    when that remainder decodes and every run of such bytes starts a character: then no
    character is cut short by an ASCII byte. Much faster than decoding the whole piece.
    """
    a = np.frombuffer(data, np.uint8)
    high = a >= 0x80
    run_start = high & ~np.concatenate(([False], high[:-1]))  # (n,) first byte of each run
    bad = np.flatnonzero(run_start & (a < 0xC0))  # a run that opens with a continuation byte
    try:
        rest = a[high].tobytes().decode("utf-8")
    except UnicodeDecodeError:
        bad = np.append(bad, 0)
    if bad.size:
        _not_utf8(data, parts)
    return np.frombuffer(rest.encode("utf-32-le"), np.uint32)


def _not_utf8(data: bytes, parts: list[Part]) -> None:
    """Raise ChargenError naming the file and offset of the first byte of the batch that is not UTF-8."""
    for start, stop, path, offset in parts:
        try:  # decoding each piece finds the exact place; only done on failure
            data[start:stop].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ChargenError(f"{path} is not UTF-8 text (bad byte at offset {offset + e.start})",
                               "convert it first, e.g. iconv -f latin1 -t utf-8 IN > OUT, "
                               "or train on its bytes with --vocab bytes") from None
    raise AssertionError("a batch that is not UTF-8 has a piece that is not")


def count_chars(batches: Iterable[tuple[bytes, list[Part]]], progress: Progress | None = None) -> dict[str, int]:
    """How often each character occurs in the batches (the first pass). Also checks they are UTF-8."""
    ascii_counts = torch.zeros(256, dtype=torch.int64)
    other: dict[int, int] = {}
    for data, parts in batches:
        if not data:
            continue
        # torch.bincount on bytes is several times faster than numpy's on this job.
        ascii_counts += torch.bincount(torch.frombuffer(bytearray(data), dtype=torch.uint8), minlength=256)
        if not data.isascii():
            cps, n = np.unique(_non_ascii(data, parts), return_counts=True)
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

    def encode(self, data: bytes, parts: list[Part]) -> np.ndarray:
        """Ids (T,) of a batch whose pieces (`parts`) each end on a character boundary."""
        ids = np.frombuffer(data.translate(self.ascii), np.uint8)  # one per byte; right for ASCII bytes
        if data.isascii():
            return ids.astype(self.dtype, copy=False)
        a = np.frombuffer(data, np.uint8)
        starts = (a & 0xC0) != 0x80  # the first byte of every character
        out = ids[starts].astype(self.dtype)  # (T,)
        out[a[starts] >= 0x80] = self.table[_non_ascii(data, parts)]
        return out


def char_ends(data: bytes, ends: list[int]) -> list[int]:
    """The characters of `data` before each of the byte positions `ends` (character boundaries)."""
    if data.isascii():
        return list(ends)
    starts = np.cumsum((np.frombuffer(data, np.uint8) & 0xC0) != 0x80)  # (n,) characters begun so far
    return [int(starts[e - 1]) if e else 0 for e in ends]
