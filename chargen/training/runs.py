"""Run folders on disk: where a run writes, the lock that keeps two runs apart,
and finding the newest run to resume or checkpoint to sample.

It decides names and guards files; what goes into a checkpoint is not its business.
"""
from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from ..data.sources import Sources
from ..errors import ChargenError
from ..model.charrnn import CELLS

LOCK_NAME = "run.lock"
CHECKPOINT_NAMES = ("best.pt", "last.pt")
COMPARISON_MARKER = "comparison.json"  # in a folder whose subfolders are `chargen compare`'s runs


def default_run_dir(corpus, cell: str, root: str | os.PathLike = "checkpoints") -> Path:
    """`<root>/<name>-<cell>`, the corpus (a path, a list of them, or Sources) named by Sources.name."""
    return Path(root) / f"{Sources.of(corpus).name}-{cell}"


def has_checkpoints(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in CHECKPOINT_NAMES)


def _taken(run_dir: Path) -> bool:
    """A folder with checkpoints, or with the lock of a run that has not saved yet."""
    return has_checkpoints(run_dir) or (run_dir / LOCK_NAME).exists()


def choose_run_dir(out: Path | None, default: Path, resume: bool) -> Path:
    """The folder a run writes to; never one that already holds another run's checkpoints.

    With `resume`, the folder must hold a last.pt or a best.pt (without `out`, train()
    resumes `newest_run` and passes it as `out`). Without `resume`, an explicit `out`
    that is in use is refused, and a default that is in use becomes `<default>-2`,
    `-3`, ... so that nothing is overwritten silently. Holding the lock, train() checks
    again (`state_files`): another run may have written the folder in the meantime.
    """
    run_dir = out if out is not None else default
    if resume:
        if not has_checkpoints(run_dir):
            raise ChargenError(f"nothing to resume: {run_dir} holds no last.pt or best.pt",
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


def state_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """The checkpoints in `run_dir` as {name: (inode, mtime in ns)}: what a run saw of its folder
    before it took the lock, to compare with what is there once it holds it."""
    found = {}
    for name in CHECKPOINT_NAMES:
        try:
            st = (run_dir / name).stat()
        except OSError:
            continue
        found[name] = (st.st_ino, st.st_mtime_ns)
    return found


def check_unchanged(run_dir: Path, seen: dict[str, tuple[int, int]], resume: bool) -> None:
    """ChargenError unless the checkpoints in `run_dir` are still those `seen` (state_files) when
    the run chose the folder: another run may have finished there while this one was starting."""
    if state_files(run_dir) == seen:
        return
    if resume:
        raise ChargenError(f"{run_dir} changed while this run was starting: another run saved there",
                           "run the same command again to continue from its newest checkpoint")
    raise ChargenError(f"{run_dir} already holds a run: another run saved there while this one was starting",
                       "add --resume to continue it, or pass another --out folder")


def resume_checkpoint(run_dir: Path) -> Path:
    """The checkpoint a resume of `run_dir` starts from: the newer of last.pt and best.pt (both hold
    the training state), so a run killed before its first last.pt continues from its best.pt."""
    found = [run_dir / name for name in reversed(CHECKPOINT_NAMES) if (run_dir / name).is_file()]
    if not found:
        raise ChargenError(f"nothing to resume: {run_dir} holds no last.pt or best.pt",
                           "drop --resume to start a new run, or pass --out RUN_DIR")
    return max(found, key=lambda p: p.stat().st_mtime_ns)  # on a tie, last.pt (first in `found`)


def make_run_dir(run_dir: Path) -> None:
    file = next((p for p in (run_dir, *run_dir.parents) if p.is_file()), None)
    if file is not None:
        where = "is a file" if file == run_dir else f"is inside {file}, which is a file"
        raise ChargenError(f"cannot create run folder {run_dir}: it {where}, not a folder",
                           "pass as --out a folder, or a path where one can be made")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ChargenError(f"cannot create run folder {run_dir}: {e.strerror}",
                           "choose a writable --out folder") from None
    if not os.access(run_dir, os.W_OK):
        raise ChargenError(f"run folder {run_dir} is not writable", "choose a writable --out folder")


class _Flock:
    """POSIX (Linux, macOS): flock on the whole file. Advisory: it guards only against other
    flock users, which every chargen run is."""

    def __init__(self) -> None:
        import fcntl

        self.fcntl = fcntl

    def lock(self, fd: int) -> bool:
        try:
            self.fcntl.flock(fd, self.fcntl.LOCK_EX | self.fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def unlock(self, fd: int) -> None:
        self.fcntl.flock(fd, self.fcntl.LOCK_UN)


class _Msvcrt:
    """Windows: msvcrt.locking on one byte far past the holder's text. Windows locks are mandatory,
    so the locked byte is kept away from the text that other runs read to name the holder."""

    OFFSET = 1 << 30  # a byte no lock file reaches: the text at the start stays readable

    def __init__(self, msvcrt=None) -> None:
        if msvcrt is None:
            import msvcrt
        self.msvcrt = msvcrt

    def _at(self, fd: int, mode) -> None:
        here = os.lseek(fd, 0, os.SEEK_CUR)
        os.lseek(fd, self.OFFSET, os.SEEK_SET)
        try:
            self.msvcrt.locking(fd, mode, 1)
        finally:
            os.lseek(fd, here, os.SEEK_SET)

    def lock(self, fd: int) -> bool:
        try:
            self._at(fd, self.msvcrt.LK_NBLCK)
        except OSError:
            return False
        return True

    def unlock(self, fd: int) -> None:
        self._at(fd, self.msvcrt.LK_UNLCK)


def os_locker():
    """The file lock of this system: flock on POSIX, msvcrt.locking on Windows."""
    return _Msvcrt() if os.name == "nt" else _Flock()


class RunLock:
    """An exclusive claim on a run folder, held for the life of a training process.

    The claim is an OS file lock on `run.lock` (flock on Linux and macOS, msvcrt.locking on
    Windows; `locker` replaces it), so the OS releases it when the process dies in any way,
    SIGKILL and power loss included: a lock left by a killed run is simply free. The file
    names the holder's host and process id, for the message another run gets.
    """

    def __init__(self, run_dir: Path, locker=None) -> None:
        self.path = run_dir / LOCK_NAME
        self.locker = locker if locker is not None else os_locker()
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def __enter__(self) -> RunLock:
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_RDWR | getattr(os, "O_BINARY", 0), 0o644)
            except OSError as e:
                raise ChargenError(f"cannot lock {self.path.parent}: {e.strerror}",
                                   "choose a writable --out folder") from None
            if not self.locker.lock(fd):
                holder = os.read(fd, 200).decode(errors="replace").split()
                os.close(fd)
                who = holder[1] if len(holder) == 2 and holder[0] == socket.gethostname() else " ".join(holder)
                raise ChargenError(f"{self.path.parent} is in use by another chargen run (process {who or '?'})",
                                   "wait for it to finish, or pass another --out")
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
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked, so nobody can take the old file
        except PermissionError:
            # Windows refuses to remove an open file: the next run finds the lock free and rewrites it.
            pass
        self.locker.unlock(self.fd)
        os.close(self.fd)
        self.fd = None


def mark_comparison(out_root: Path, cells: list[str]) -> None:
    """Mark `out_root` as a comparison's folder: the runs in it are not training runs that
    `newest_checkpoint` and `newest_run` would pick."""
    try:
        out_root.mkdir(parents=True, exist_ok=True)
        (out_root / COMPARISON_MARKER).write_text(json.dumps({"cells": cells}) + "\n", encoding="utf-8")
    except OSError as e:
        raise ChargenError(f"cannot write {out_root / COMPARISON_MARKER}: {e.strerror}",
                           "choose a writable --out folder") from None


def _in_comparison(path: Path, root: Path) -> bool:
    """Whether a folder between `root` (exclusive) and `path` holds the comparison marker."""
    return any((root / folder / COMPARISON_MARKER).is_file() for folder in path.relative_to(root).parents
               if folder != Path("."))


def newest_checkpoint(root: str | os.PathLike = "checkpoints", name: str = "best.pt") -> Path:
    """The most recently modified `name` of a training run anywhere under `root`: runs inside a
    folder that `chargen compare` marked (`comparison.json`) are left out."""
    root = Path(root)
    found = [p for p in root.glob(f"**/{name}") if not _in_comparison(p, root)] if root.is_dir() else []
    if not found:
        raise ChargenError(f"no {name} of a training run found under {root}/",
                           "pass a checkpoint path, or train one first: chargen train corpora/shakespeare.txt")
    return max(found, key=lambda p: p.stat().st_mtime)


def newest_run(corpus, cell: str | None = None, root: str | os.PathLike = "checkpoints") -> Path:
    """The run folder a `--resume` without a folder continues: of the default folders of this
    corpus (`<name>-<cell>` and `<name>-<cell>-N` directly under `root`, of `cell` or of any
    cell when None), the one whose last.pt was saved last. A folder with a best.pt alone (a
    shipped model, or a run killed before its first last.pt) is only resumed when named with
    --out. Raises ChargenError when none has a last.pt."""
    stem, root = Sources.of(corpus).name, Path(root)
    cells = "|".join(CELLS if cell is None else (cell,))
    pattern = re.compile(rf"{re.escape(stem)}-({cells})(-[0-9]+)?")
    folders = [d for d in root.iterdir() if pattern.fullmatch(d.name)] if root.is_dir() else []
    runs = [d for d in folders if (d / "last.pt").is_file()]
    if not runs:
        which = f"{stem}-{cell or '<cell>'}"
        best_only = sorted(d for d in folders if (d / "best.pt").is_file())
        hint = f"to continue {best_only[-1]} from its best.pt, pass --out {best_only[-1]}" if best_only \
            else "drop --resume to start a new run, or pass --out RUN_DIR"
        raise ChargenError(f"nothing to resume: no {which} run under {root}/ holds a last.pt", hint)
    return max(runs, key=lambda d: (d / "last.pt").stat().st_mtime)
