"""Writing files so that nothing already on disk is lost: a file is written beside its target and
renamed over it only when complete; and numbers made fit for JSON and tables (NaN is not JSON).
Below every package, so that each layer writes files the same way."""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path
from typing import IO
from collections.abc import Iterator

TEMP_SUFFIX = ".tmp"  # a file being written is ".<name>.<random>.tmp" beside its target


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None,
                 fsync: bool = False) -> Iterator[IO]:
    """A file object to write `path` through: a temporary file in the same folder, readable by others
    (0644, where mkstemp makes 0600), flushed (and with `fsync`, synced to the disk) and renamed over
    `path` when the block ends (a rename within one file system is atomic). If the block or the write
    raises, the temporary file is removed and `path` is left as it was; OSError is the caller's to word."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # by name: os.fchmod does not exist on Windows
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def finite_or_none(x: float, digits: int | None = None) -> float | None:
    """x (rounded to `digits` when given), or None when it is NaN or infinite: JSON has no NaN, and
    a table shows None as '-'."""
    if not math.isfinite(x):
        return None
    return x if digits is None else round(x, digits)
