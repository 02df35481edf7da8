"""Run folders on disk: where a run writes, the lock that keeps two runs apart,
the metrics log, and finding the newest checkpoint.

It decides names and guards files; what goes into a checkpoint is not its business.
"""
from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path

from ..errors import ChargenError

LOCK_NAME = "run.lock"
CHECKPOINT_NAMES = ("best.pt", "last.pt")


def default_run_dir(corpus: str | os.PathLike, cell: str, root: str | os.PathLike = "checkpoints") -> Path:
    return Path(root) / f"{Path(corpus).stem}-{cell}"


def has_checkpoints(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in CHECKPOINT_NAMES)


def _taken(run_dir: Path) -> bool:
    """A folder with checkpoints, or with the lock of a run that has not saved yet."""
    return has_checkpoints(run_dir) or (run_dir / LOCK_NAME).exists()


def choose_run_dir(out: Path | None, default: Path, resume: bool) -> Path:
    """The folder a run writes to; never one that already holds another run's checkpoints.

    With `resume`, the folder must hold a `last.pt`. Without it, an explicit `out`
    that is in use is refused, and a default that is in use becomes `<default>-2`,
    `-3`, ... so that nothing is overwritten silently.
    """
    run_dir = out if out is not None else default
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise ChargenError(f"nothing to resume: {run_dir / 'last.pt'} does not exist",
                               "drop --resume to start a new run, or pass --out RUN_DIR")
        return run_dir
    if out is not None:
        if has_checkpoints(run_dir):
            raise ChargenError(f"{run_dir} already holds a run",
                               "add --resume to continue it, or pass another --out folder")
        return run_dir  # a run still starting there is refused by its lock, naming its process
    if not _taken(run_dir):
        return run_dir
    n = 2
    while _taken(run_dir.with_name(f"{default.name}-{n}")):
        n += 1
    return run_dir.with_name(f"{default.name}-{n}")


def make_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChargenError(f"cannot create run folder {run_dir}: {e.strerror}",
                           "choose a writable --out folder") from None
    if not os.access(run_dir, os.W_OK):
        raise ChargenError(f"run folder {run_dir} is not writable", "choose a writable --out folder")


class RunLock:
    """An exclusive claim on a run folder, held for the life of a training process.

    The claim is an OS file lock (flock) on `run.lock`, so the kernel releases it when
    the process dies in any way, SIGKILL and power loss included: a lock left by a
    killed run is simply free. The file names the holder's host and process id, for
    the message another run gets. Takes a POSIX system (Linux, macOS).
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> RunLock:
        import fcntl

        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as e:
                raise ChargenError(f"cannot lock {self.path.parent}: {e.strerror}",
                                   "choose a writable --out folder") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").split()
                os.close(fd)
                who = holder[1] if len(holder) == 2 and holder[0] == socket.gethostname() else " ".join(holder)
                raise ChargenError(f"{self.path.parent} is in use by another chargen run (process {who or '?'})",
                                   "wait for it to finish, or pass another --out") from None
            if self._still_linked(fd):  # not a file that the previous holder unlinked as we opened it
                os.ftruncate(fd, 0)
                os.write(fd, f"{socket.gethostname()} {os.getpid()}".encode())
                self.fd = fd
                return self
            os.close(fd)
        raise ChargenError(f"could not lock {self.path.parent}", "try again")

    def _still_linked(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked, so nobody can take the old file
            os.close(self.fd)  # releases the flock
            self.fd = None


def append_metrics(run_dir: Path, record: dict) -> None:
    """Append one JSON object as a line of `metrics.jsonl`."""
    try:
        with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(_strict(record), allow_nan=False) + "\n")
    except OSError as e:
        raise ChargenError(f"could not write {run_dir / 'metrics.jsonl'}: {e.strerror}",
                           "free some disk space or choose a writable --out folder") from None


def _strict(record: dict) -> dict:
    # NaN and Infinity are not JSON: write them as null so that jq and friends can read a failed run.
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}


def newest_checkpoint(root: str | os.PathLike = "checkpoints", name: str = "best.pt") -> Path:
    """The most recently modified `name` anywhere under `root`."""
    found = sorted(Path(root).glob(f"**/{name}"), key=lambda p: p.stat().st_mtime) if Path(root).is_dir() else []
    if not found:
        raise ChargenError(f"no {name} found under {root}/",
                           "pass a checkpoint path, or train one first: chargen train corpora/shakespeare.txt")
    return found[-1]
