"""What every command shares: the stderr console, turning library errors into one line and
an exit code, tables, and finding the checkpoint a command reads."""
from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import ChargenError
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
    1 for a ChargenError, 130 for Ctrl-C, 0 when the reader of stdout went away."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
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
    # The reader of a pipe went away (`| head`): point stdout at /dev/null so the
    # interpreter's final flush does not complain about it.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def finite(x: float) -> float | None:
    """x rounded for a table or JSON, or None (shown as '-' or null) when it is not finite."""
    return round(x, 4) if math.isfinite(x) else None


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
