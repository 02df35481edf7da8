"""The metrics log, `metrics.jsonl` in a run folder: one JSON object per evaluation, appended
whole or not at all, so that a full disk, a kill or Ctrl-C never leaves half a line behind.
What goes into a record is trainer.py's business.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..errors import write_error
from ..fileio import finite_or_none
from ..interrupts import interrupts_held


def append_metrics(run_dir: Path, record: dict) -> None:
    """Append one JSON object as a line of `metrics.jsonl`, whole or not at all.

    A write that fails (a full disk) is cut back to the previous line's end, and so is a torn
    last line that an older run left (killed or out of space mid-line), so that every line
    stays one JSON object. Ctrl-C during the write is held until it is complete.
    """
    path = run_dir / "metrics.jsonl"
    line = (json.dumps(_strict(record), allow_nan=False) + "\n").encode("utf-8")
    with interrupts_held():
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as e:
            raise write_error("", path, e) from None
        try:
            end = _whole_lines_end(fd)
            try:
                os.lseek(fd, end, os.SEEK_SET)
                written = 0
                while written < len(line):  # os.write may write part of it: the rest follows
                    written += os.write(fd, line[written:])
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise write_error("", path, e) from None
        finally:
            os.close(fd)


def _whole_lines_end(fd: int) -> int:
    """The size of the file at `fd` without a last line that lacks its newline (cut off, if any)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    tail, start = b"", size
    while start > 0 and b"\n" not in tail:
        start = max(0, start - 4096)
        tail = _read_at(fd, start, size - start)
    end = start + tail.rfind(b"\n") + 1 if b"\n" in tail else 0
    if end != size:
        os.ftruncate(fd, end)
    return end


def _read_at(fd: int, offset: int, n: int) -> bytes:
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, n)


def _strict(record: dict) -> dict:
    # NaN and Infinity are not JSON: write them as null so that jq and friends can read a failed run.
    return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in record.items()}


def last_logged_step(run_dir: Path) -> int:
    """The step of the last whole record in `metrics.jsonl` (0 when there is none)."""
    try:
        with open(run_dir / "metrics.jsonl", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - (1 << 20)))  # a record is far smaller: its sample is at most 100k characters
            tail = f.read()
    except OSError:
        return 0
    for line in reversed(tail.split(b"\n")[:-1]):  # what follows the last newline is torn or empty
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0

