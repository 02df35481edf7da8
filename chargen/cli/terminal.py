"""The command line's text output: streaming characters to stdout as they are made, and
the interactive prime-and-continue loop. Part of the CLI layer, kept free of typer and
rich so that it can be driven with plain file objects in tests.
"""
from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from ..data.vocab import Vocab
from ..errors import ChargenError
from ..sample.sampler import Sampler, check_text, text_until_stop


def unescape(text: str, byte_escapes: bool = False) -> str:
    """Let a shell user write a newline, a tab or any character below U+0100 in --stop as \\n, \\t
    or \\xHH (\\x1c: the file separator that ends each file of a corpus of several). With `byte_escapes`
    (a bytes model), \\xHH is the byte HH: from 0x80 on, the lone surrogate U+DCHH that stands for it."""
    escapes = {"n": "\n", "t": "\t"}

    def char(hh: str) -> str:
        code = int(hh, 16)
        return chr(0xDC00 + code) if byte_escapes and code >= 0x80 else chr(code)
    return re.sub(r"\\(x[0-9a-fA-F]{2}|n|t)", lambda m: escapes.get(m[1]) or char(m[1][1:]), text)


def warn_unknown(vocab: Vocab, text: str) -> None:
    """Say on stderr, in one line, which characters of `text` the model will read as its unknown symbol."""
    warn_unknown_chars(vocab.unknown(text))


def warn_unknown_chars(unknown: list[str]) -> None:
    """One stderr line naming characters a model reads as its unknown symbol U+FFFD; nothing if none."""
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        shown = ", ".join(repr(c) for c in unknown[:10]) + more
        sys.stderr.write(f"warning: the model never learned {shown}; read as its unknown symbol U+FFFD\n")


def stream(prime: str, chars: Iterator[str]) -> None:
    """Write the prime and then each piece of text as it comes, flushing at each newline (at
    least every 0.05 s), and a final newline. Characters are written as they are: the file
    separator U+001C too, so that a script can split a sample into files on it."""
    out = sys.stdout
    out.write(prime)
    last_flush = time.monotonic()
    for ch in chars:
        out.write(ch)
        now = time.monotonic()
        if ch == "\n" or now - last_flush > 0.05:  # let a reader see the text appear
            out.flush()
            last_flush = now
    out.write("\n")
    out.flush()


def stream_raw(prime: bytes, ids: Iterator, stop: bytes = b"", out: BinaryIO | None = None) -> None:
    """Write the prime and then the byte of each drawn id as it comes, unchanged (a bytes model's
    output exactly as drawn, any bytes at all), ending right after the first `stop`; no final newline."""
    out = out if out is not None else sys.stdout.buffer
    out.write(prime)
    seen = b""
    for nxt in ids:
        byte = bytes([int(nxt)])
        out.write(byte)
        if stop:
            seen = (seen + byte)[-len(stop):]
            if seen == stop:
                break
        if byte == b"\n":
            out.flush()
    out.flush()


def interact(sampler: Sampler, lines: TextIO) -> None:
    """Read primes line by line; after each, stream a continuation. The state carries on
    from turn to turn; `/reset` forgets it, `/quit` (or end of input) leaves."""
    sys.stderr.write("type a prime and press Enter (empty: just continue); /reset forgets, /quit leaves\n")
    cfg = sampler.cfg
    while True:
        sys.stderr.write("> ")
        sys.stderr.flush()
        line = lines.readline()
        if not line or line.strip() == "/quit":
            return
        text = line.rstrip("\n")
        if text.strip() == "/reset":
            sampler.reset()
            sys.stderr.write("(state reset)\n")
            continue
        try:
            if text:
                check_text(sampler.vocab, text)  # before the warning, which would name such a byte as unknown
                warn_unknown(sampler.vocab, text)
                sampler.feed(text)
        except ChargenError as e:
            sys.stderr.write(f"error: {e.message}\n")
            continue
        stream(text, text_until_stop(sampler.vocab, sampler.draw(cfg.length), cfg.stop))
