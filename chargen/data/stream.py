"""A corpus's files read as one stream of bytes: each file in order, followed by the file
separator when there are several, in slabs of a few MiB that may hold many small files.
Reading errors become one ChargenError naming the file; what the bytes mean is not its business.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from ..errors import ChargenError
from . import utf8
from .sources import FILE_SEPARATOR, SourceFile
from .utf8 import Part

SEPARATOR = FILE_SEPARATOR.encode("ascii")


@dataclass(frozen=True)
class Slab:
    """About BLOCK_BYTES of the stream: `parts` says which file each piece of `data` is from, and
    `ends` lists the positions in `data` just past each file that ends here (past its separator)."""

    data: bytes
    parts: list[Part]
    ends: list[int]


def slabs(files: list[SourceFile], kind: str, separator: bool) -> Iterator[Slab]:
    """The files' bytes in order, each followed by the separator byte when `separator`.

    For a "chars" corpus each file is read in pieces that end on character boundaries, its
    BOM dropped (utf8.pieces); for "bytes" in blocks as stored. Small files share a slab, so
    a folder of many small files costs little more per byte than one large file.
    """
    size = utf8.BLOCK_BYTES
    data: list[bytes] = []
    parts: list[Part] = []
    ends: list[int] = []
    n = 0
    for f in files:
        for offset, piece in _pieces(f.path, kind, size):
            data.append(piece)
            parts.append((n, n + len(piece), f.path, offset))
            n += len(piece)
            if n >= size:
                yield Slab(b"".join(data), parts, ends)
                data, parts, ends, n = [], [], [], 0
        if separator:
            data.append(SEPARATOR)
            n += 1
        ends.append(n)
        if n >= size:
            yield Slab(b"".join(data), parts, ends)
            data, parts, ends, n = [], [], [], 0
    if n or ends:
        yield Slab(b"".join(data), parts, ends)


def _pieces(path: str, kind: str, size: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of one file (for "bytes" its blocks: any byte boundary will do), with one
    ChargenError if it cannot be read."""
    try:
        if kind == "chars":
            yield from utf8.pieces(utf8.read_blocks(path, size))
        else:
            offset = 0
            for block in utf8.read_blocks(path, size):
                yield offset, block
                offset += len(block)
    except OSError as e:
        unreadable(path, e)


def unreadable(path: str, e: OSError) -> NoReturn:
    """Raise the ChargenError for a file of the corpus that could not be read (`e`), naming it."""
    if isinstance(e, FileNotFoundError):
        raise ChargenError(f"{path} vanished while the corpus was being prepared",
                           "train again once the files stay put") from None
    raise ChargenError(f"cannot read {path}: {e.strerror or e}",
                       "check the file's permissions, or leave it out with --exclude") from None
