"""What every command shares: the stderr console, turning library errors into one line and
an exit code, tables, and finding the checkpoint a command reads."""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ChargenError
from ..fileio import finite_or_none
from ..training.runs import newest_checkpoint


class Interrupted(Exception):
    """Raised inside a command to leave with exit code 130."""


def field_default(cls, name: str):
    """A dataclass field's default: the one source of a flag's default."""
    return {f.name: f.default for f in fields(cls)}[name]


def console() -> Console:
    """Rich output on stderr: stdout carries generated text (or JSON) alone."""
    return Console(stderr=True, highlight=False)


def guard(fn):
    """Turn library errors into one-line messages and exit codes at the CLI boundary:
    1 for a ChargenError (a failed write to stdout included), 130 for Ctrl-C, 0 when the
    reader of stdout went away."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
            with stdout_errors():
                sys.stdout.flush()  # here, not at exit, where a full disk could only print a traceback
            return result
        except ChargenError as e:
            hint = f" (hint: {e.hint})" if e.hint else ""
            sys.stderr.write(f"error: {e.message}{hint}\n")
            raise typer.Exit(1) from None
        except (KeyboardInterrupt, Interrupted):
            sys.stderr.write("\ninterrupted\n")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
    return wrapper


def _silence_stdout() -> None:
    # The reader of a pipe went away (`| head`), or the disk is full: point stdout at
    # /dev/null so the interpreter's final flush does not complain about it.
    _to_devnull(sys.stdout)


def _to_devnull(stream) -> None:
    """Point the file descriptor under `stream` at /dev/null (nothing when it has none, as in tests)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


@contextlib.contextmanager
def stdout_errors() -> Iterator[None]:
    """Around the writes to stdout: one that fails (`> /dev/full`, a full disk) becomes a ChargenError.
    Only stdout's own writes belong inside; a closed pipe stays a BrokenPipeError (guard: exit 0)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        _silence_stdout()
        raise ChargenError(f"could not write the output to stdout: {e.strerror or e}",
                           "free some disk space, or send the output to another file") from None


class _Survivor:
    """Stands in for stdout or stderr while a run trains: a write that fails (the reader of a pipe
    went away, `| head`; a full disk) drops this and every later write instead of ending the run.
    The stream's file descriptor then points at /dev/null, so that nothing else fails on it."""

    lost: OSError | None  # the error that dropped the stream

    def __init__(self, stream) -> None:
        self.stream, self.lost = stream, None

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self.stream.write(text)
            except OSError as e:
                self._drop(e)
        return len(text)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self.stream.flush()
            except OSError as e:
                self._drop(e)

    def _drop(self, e: OSError) -> None:
        self.lost = e
        _to_devnull(self.stream)

    def __getattr__(self, name: str):  # isatty, fileno, encoding, ...: the stream's own
        return getattr(self.stream, name)


def outlives_its_output(fn):
    """For a command that must finish once started (a training run): a closed or full stdout or
    stderr is dropped and the command goes on, exiting as it would have. Only a summary that
    could not reach stdout for another reason than a closed pipe fails it afterwards (exit 1)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err = _Survivor(sys.stdout), _Survivor(sys.stderr)
        try:
            result = fn(*args, **kwargs)
        finally:
            out.flush()
            err.flush()
            sys.stdout, sys.stderr = saved
        if out.lost is not None and out.lost.errno != errno.EPIPE:
            raise ChargenError(f"could not write the summary to stdout: {out.lost.strerror or out.lost}",
                               "the run is saved; free some disk space, or send the output to another file")
        return result
    return wrapper


def finite(x: float) -> float | None:
    """x rounded for a table or JSON, or None (shown as '-' or null) when it is not finite."""
    return finite_or_none(x, 4)


def table(title: str, rows: dict) -> Table:
    """A two-column key/value table."""
    out = Table(title=title, show_header=False, title_justify="left")
    out.add_column(style="bold")
    out.add_column()
    for key, value in rows.items():
        out.add_row(key.replace("_", " "), "-" if value is None else str(value))
    return out


def checkpoint_path(checkpoint: Optional[Path], quiet: bool) -> Path:
    """The checkpoint a command was given, or the newest best.pt of a training run under checkpoints/
    (not of a `chargen compare` run), named on stderr."""
    if checkpoint is not None:
        return checkpoint
    found = newest_checkpoint("checkpoints")
    if not quiet:
        sys.stderr.write(f"using {found}\n")
    return found
