"""Reading a text file from disk: its raw bytes, or its UTF-8 text, with one-line errors
for a folder, a missing, unreadable, empty or non-UTF-8 file; and showing drawn text safely.
Nothing here knows ids."""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from ..errors import ChargenError


def read_raw(path: str | os.PathLike, limit: int = -1, what: str = "corpus") -> bytes:
    """The bytes of a text file (the first `limit` of them if given), with one ChargenError for
    a folder, a missing file or an unreadable one; `what` names the file in the message."""
    path = Path(path)
    if path.is_dir():
        raise ChargenError(f"{path} is a folder, not a text file", "pass the path of a UTF-8 text file")
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        example = ", e.g. corpora/shakespeare.txt" if what == "corpus" else ""
        raise ChargenError(f"{what} not found: {path}", f"check the path{example}") from None
    except OSError as e:
        raise ChargenError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from None


def read_text(path: str | os.PathLike, what: str = "corpus") -> str:
    """Read a UTF-8 file exactly as stored: '\\r\\n' and '\\n' are kept, a BOM is dropped.
    `what` names the file in the messages ("corpus not found: ...")."""
    path = Path(path)
    raw = read_raw(path, what=what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ChargenError(f"{path} is not UTF-8 text (bad byte at offset {e.start})",
                           "convert it first, e.g. iconv -f latin1 -t utf-8 IN > OUT") from None
    text = text.removeprefix("\ufeff")
    if not text:
        raise ChargenError(f"{path} is empty", "train on a file that contains text" if what == "corpus"
                           else "pass a file that contains text")
    return text


def read_model_text(path: str | os.PathLike, kind: str, what: str = "text") -> str:
    """A file as a model of vocabulary `kind` reads it: UTF-8 text (read_text) for a chars model; any
    bytes for a bytes model, a byte that is not UTF-8 carried as a lone surrogate (Python's
    surrogateescape), which Vocab.encode gives back as that byte."""
    if kind == "chars":
        return read_text(path, what=what)
    return read_raw(path, what=what).decode("utf-8", "surrogateescape")


def escape_controls(text: str) -> str:
    """`text` with control characters other than newline and tab written as Python escapes (\\x1b,
    \\r): a model may draw any character of its corpus, and an escape sequence would garble a
    terminal or make a text file binary."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) == "Cc" and c not in "\n\t"
                   else c for c in text)
