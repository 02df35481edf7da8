"""Which files a corpus is made of: files, folders (searched recursively) and glob patterns
expanded to a list of files in a stable order, chosen by --include/--exclude patterns, and the
name that a run and a cache take from them. Reading the files is stream.py's job.
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ChargenError

# U+001C FILE SEPARATOR (ASCII 0x1C): in a corpus of several files every file is followed by it,
# so the model learns where a file ends (and, sampling, ends one with it); the byte 0x1C in a
# bytes corpus. A corpus of one file is that file alone, without it.
FILE_SEPARATOR = "\x1c"
_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True)
class SourceFile:
    """One file of a corpus: where it is (a str, cheaper than a Path ten thousand times over), and
    `rel`, its '/'-separated path relative to the folder (or a glob's fixed leading folders) it
    was found in; for a file given by itself, its name."""

    path: str
    rel: str


@dataclass(frozen=True)
class Sources:
    """What a corpus is made of: `paths` (files, folders, glob patterns such as 'src/**/*.py')
    and the fnmatch patterns that choose among their files.

    `files()` expands them: a folder to every file below it (hidden files and folders, whose
    names start with '.', are skipped: .git and the like), a pattern to what it matches; links
    to folders are not followed (a link loop would repeat the files forever). Each path's files
    come sorted by their relative path (compared folder by folder, code point by code point, so
    the order is the same on every machine), the paths in the order given, a file reached twice
    (again by name, or through a link: the same device and inode) only the first time. A file is kept
    when it matches an `include` pattern (if any are given) and no `exclude` pattern; a pattern is tried on the file's
    relative path and on its name ('*' crosses folders: '*.py' and 'tests/*' both work).
    """

    paths: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("paths", "include", "exclude"):
            value = getattr(self, name)
            value = (value,) if isinstance(value, (str, os.PathLike)) else value  # one, not its characters
            object.__setattr__(self, name, tuple(os.fspath(p) for p in value))
        if not self.paths or any(not p for p in self.paths):
            raise ChargenError("no corpus given", "pass a text file, a folder or a glob pattern")

    @classmethod
    def of(cls, corpus: Sources | str | os.PathLike | list | tuple) -> Sources:
        """`corpus` as Sources: itself, one path, or a list of paths."""
        if isinstance(corpus, Sources):
            return corpus
        if isinstance(corpus, (str, os.PathLike)):
            return cls((os.fspath(corpus),))
        return cls(tuple(corpus))

    def __str__(self) -> str:
        return " ".join(self.paths)

    @property
    def name(self) -> str:
        """What runs and caches are named after: the first path's file name without its suffix
        ('shakespeare' for corpora/shakespeare.txt), a folder's name, or a pattern's fixed folder's."""
        first = self.paths[0]
        if _MAGIC.search(first) and not os.path.exists(first):
            first, is_dir = _fixed_part(first) or ".", True
        else:
            is_dir = os.path.isdir(first)
        name = Path(os.path.abspath(first)).name if is_dir else Path(first).stem
        return name or "corpus"

    def key(self) -> str:
        """The paths (absolute) and patterns as one string: what a prepared cache is kept for."""
        return json.dumps([[os.path.realpath(p) for p in self.paths], list(self.include), list(self.exclude)])

    def files(self) -> list[SourceFile]:
        """The corpus's files in their stable order; ChargenError for a path that does not exist,
        a folder without files, a pattern that matches none, or patterns that leave none."""
        found: dict[object, SourceFile] = {}
        for path in self.paths:
            for f in _expand(path):
                found.setdefault(_identity(f.path), f)
        kept = [f for f in found.values() if self._chosen(f)] if self.include or self.exclude else list(found.values())
        if not kept:
            raise ChargenError(f"the include/exclude patterns leave none of the {len(found)} files of {self}",
                               "patterns match a file's path relative to the folder given, or its name, "
                               "e.g. --include '*.py' --exclude 'tests/*'")
        return kept

    def _chosen(self, f: SourceFile) -> bool:
        name = f.rel.rsplit("/", 1)[-1]

        def matches(pattern: str) -> bool:
            return fnmatch.fnmatchcase(f.rel, pattern) or fnmatch.fnmatchcase(name, pattern)
        return (not self.include or any(map(matches, self.include))) and not any(map(matches, self.exclude))


def _identity(path: str) -> object:
    """What makes two paths one file: its device and inode (a symlink or a hard link reaches the same
    file, which must not be read twice: it could land on both sides of the split), else its real path."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino) if st.st_ino else os.path.realpath(path)


def _expand(path: str) -> list[SourceFile]:
    """The files of one path: itself, a folder's files, or a pattern's, sorted by relative path."""
    if os.path.isfile(path):
        return [SourceFile(path, Path(path).name)]
    if os.path.isdir(path):
        files = _walk(path, "")
        if not files:
            raise ChargenError(f"{path} holds no files", "pass a folder with text files in it (hidden files "
                                                         "and folders are skipped), or a text file")
        return files
    if not _MAGIC.search(path):
        if os.path.lexists(path):
            raise ChargenError(f"{path} is not a file or a folder", "pass a text file, a folder or a glob pattern")
        raise ChargenError(f"corpus not found: {path}", "check the path, e.g. corpora/shakespeare.txt")
    parts = _split(path)
    fixed = next(i for i, part in enumerate(parts) if _MAGIC.search(part) or i == len(parts) - 1)
    files = []
    _match(_fixed_part(path) or ".", [p for p in parts[fixed:] if p], "", files)
    if not files:
        raise ChargenError(f"no file matches {path}", "check the pattern, e.g. 'texts/**/*.txt' (in quotes, "
                                                      "so that chargen expands it: '**' crosses folders)")
    return sorted(files, key=_order)


def _match(folder: str, segments: list[str], prefix: str, out: list[SourceFile]) -> None:
    """Append to `out` the files below `folder` that the pattern `segments` matches, as glob would
    ('**' alone: any folders; '*' never matches a leading '.'; a matched folder: all its files),
    but without following links to folders: glob follows them, and a link to a parent folder
    repeats its files dozens of times (two such links: millions of paths)."""
    segment, rest = segments[0], segments[1:]
    if segment == "**":
        if not rest:
            out += _walk(folder, prefix)
            return
        _match(folder, rest, prefix, out)
        for entry in _entries(folder):
            if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                _match(entry.path, segments, f"{prefix}{entry.name}/", out)
        return
    for entry in _entries(folder):
        if (entry.name.startswith(".") and not segment.startswith(".")) or not fnmatch.fnmatchcase(entry.name, segment):
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        if is_dir:
            (_match(entry.path, rest, f"{prefix}{entry.name}/", out) if rest
             else out.extend(_walk(entry.path, f"{prefix}{entry.name}/")))
        elif not rest and entry.is_file():
            out.append(SourceFile(entry.path, prefix + entry.name))


def _entries(folder: str) -> list[os.DirEntry]:
    """The entries of a folder; ChargenError when it cannot be read."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ChargenError(f"cannot read the folder {folder}: {e.strerror}", "check its permissions") from None


def _walk(folder: str, rel: str) -> list[SourceFile]:
    """Every file below `folder` (hidden entries skipped, folder links not followed), its relative
    path prefixed with `rel`."""
    files, pending = [], [(folder, rel)]
    while pending:
        current, prefix = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((entry.path, f"{prefix}{entry.name}/"))
                    elif entry.is_file():
                        files.append(SourceFile(entry.path, prefix + entry.name))
        except OSError as e:
            raise ChargenError(f"cannot read the folder {current}: {e.strerror}", "check its permissions") from None
    return sorted(files, key=_order)


def _order(f: SourceFile) -> tuple[str, ...]:
    # Folder by folder: a folder's files stay together ('a/b' before 'a-b', which a plain string sort inverts).
    return tuple(f.rel.split("/"))


def _fixed_part(pattern: str) -> str:
    """The leading folders of a glob pattern that hold no wildcard: 'texts/en' for 'texts/en/*/*.txt'."""
    parts = _split(pattern)
    fixed = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    return "/".join(fixed) if fixed != [""] else "/"


def _split(pattern: str) -> list[str]:
    return re.split(r"[/\\]" if os.sep == "\\" else "/", pattern)
