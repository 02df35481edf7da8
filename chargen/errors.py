"""The one error type the library raises for problems a user can fix.

The CLI turns a ChargenError into a one-line message, its hint, and exit code 1;
anything else escaping the library is a bug and keeps its traceback.
"""


class ChargenError(Exception):
    """A domain error: bad input, a missing file, a corrupt checkpoint.

    `hint` is one short sentence telling the user what to do next.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


def write_error(what: str, path, e: OSError, hint: str = "choose a writable --out folder") -> ChargenError:
    """A failed write of `what` at `path` as one line whose hint fits its cause: a full disk, a
    folder deleted while it was being written, or (`hint`) a folder that cannot be written."""
    import errno
    import os

    folder = os.path.dirname(os.fspath(path)) or "."
    reason, target = e.strerror or str(e), f"{what} {path}" if what else str(path)
    if e.errno == errno.ENOENT and not os.path.isdir(folder):
        return ChargenError(f"could not write {target}: the folder {folder} vanished (deleted or moved "
                            "while this was writing it)", "put the folder back, or run again into another --out folder")
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ChargenError(f"could not write {target}: {reason}",
                            "free some disk space or choose a writable --out folder")
    return ChargenError(f"could not write {target}: {reason}", hint)
