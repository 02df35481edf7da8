"""A corpus ready for training: the prepared ids split into a training head and a validation
tail (the last files of a corpus of several, a contiguous tail of one file), and any file
encoded in a model's own numbering."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ChargenError
from .cache import CorpusPaths
from .cache import PreparedCorpus, prepare_corpus
from .sources import Sources
from .utf8 import Progress
from .vocab import Vocab


def split_ids(ids, val_frac: float, val_chars: int = 0):
    """Split ids (a tensor or an array) into (train, val): val is the contiguous last `val_frac`
    of them, but at most `val_chars` ids when that is set (so a huge corpus evaluates quickly).

    A contiguous tail, not random windows, so that no validation text leaks into
    training through overlapping context, and figures compare with published ones.
    """
    n_val = int(len(ids) * val_frac)
    if val_chars:
        n_val = min(n_val, val_chars)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]


def split_files(ids, ends: tuple[int, ...], val_frac: float, val_chars: int = 0, val_files: int = 0):
    """Split the ids of a corpus of several files (file i ends at `ends[i]`) into (train, val):
    val is the last `val_files` files in the corpus's order, or with `val_files` 0 about `val_frac`
    of them (at least one while val_frac > 0, at most all but one). Empty files (a separator
    alone) are not counted: val starts at a file with text, and empty files after it go with it.

    With `val_chars`, only as many of those last files as hold val_chars ids are kept for
    validation (the others train), and of them only the last val_chars ids: the head cut off
    the first of them is used for neither. Whole files, so that no part of a document is both
    trained and scored; the last ones in the stable order, so that every machine splits alike.
    """
    starts = (0, *ends[:-1])
    texts = [i for i in range(len(ends)) if ends[i] - starts[i] > 1]  # files holding more than their separator
    n = len(texts)
    k = val_files or (max(1, min(n - 1, round(n * val_frac))) if val_frac > 0 else 0)
    if k and k >= n and val_files:
        raise ChargenError(f"--val-files {k} leaves no file to train on: the corpus has {n} files with text",
                           f"use --val-files {n - 1} or fewer" if n > 1 else "use --val-frac 0, or add files")
    if k and k >= n:
        raise ChargenError(f"only 1 of the corpus's {len(ends)} files holds text, and validation takes whole files",
                           "add a file to validate on, or use --val-frac 0")
    if val_chars:
        k = next((j for j in range(1, k) if ends[-1] - starts[texts[n - j]] >= val_chars), k)
    cut = starts[texts[n - k]] if k else len(ids)
    val = ids[cut:]
    if val_chars and len(val) > val_chars:
        val = val[len(val) - val_chars:]
    return ids[:cut], val


def split_prepared(prepared: PreparedCorpus, val_frac: float, val_chars: int = 0, val_files: int = 0):
    """(train, val) of a prepared corpus: split_files for several files, split_ids for one. The one
    rule that training and `chargen eval --split val` both use."""
    if len(prepared.ends) > 1:
        return split_files(prepared.ids, prepared.ends, val_frac, val_chars, val_files)
    return split_ids(prepared.ids, val_frac, val_chars)


@dataclass(frozen=True)
class Corpus:
    """A prepared corpus split for training: a training head read window by window from the
    memory map, and a validation tail small enough to hold in memory."""

    vocab: Vocab
    train_ids: np.ndarray  # (N_train,) uint8/16/32, memory-mapped
    val_ids: torch.Tensor  # (N_val,) int64
    name: str = ""  # the corpus's file or folder name (its paths, when several), kept for a model card

    @property
    def size(self) -> int:
        """Ids on both sides of the split."""
        return len(self.train_ids) + len(self.val_ids)


def load_corpus(path: CorpusPaths, val_frac: float, val_chars: int = 0, min_char_count: int = 1,
                cache: str | os.PathLike | None = None, progress: Progress | None = None, vocab: str = "chars",
                val_files: int = 0) -> Corpus:
    """Prepare (or open from the cache) a corpus (one path, a list of them, or Sources: see
    prepare_corpus) and split it: one file as split_ids does, several as split_files does."""
    prepared = prepare_corpus(path, min_char_count, cache, progress, vocab)
    if len(prepared.ends) <= 1 and val_files:
        raise ChargenError(f"--val-files {val_files} splits a corpus of several files, and "
                           f"{Sources.of(path)} is one file",
                           "drop --val-files: one file's validation part is its last --val-frac")
    train_ids, val_ids = split_prepared(prepared, val_frac, val_chars, val_files)
    if (val_frac > 0 or val_files) and len(val_ids) < 2:
        raise ChargenError(f"{Sources.of(path)} is too short for a validation split ({len(prepared.ids)} characters)",
                           "use a longer text or --val-frac 0")
    sources = Sources.of(path)
    one = sources.paths[0]
    name = (Path(one).name if os.path.isfile(one) else sources.name) if len(sources.paths) == 1 else str(sources)
    return Corpus(prepared.vocab, train_ids, torch.from_numpy(val_ids.astype(np.int64)), name)


def encode_file(path: CorpusPaths, vocab: Vocab, val_frac: float | None = None,
                val_chars: int = 0, val_files: int = 0) -> torch.Tensor:
    """Ids (N,) int64 of a UTF-8 file (or a corpus of several: see prepare_corpus) in `vocab`'s
    numbering (a model's), or with `val_frac` only its validation part as split_prepared cuts it
    in training; only that part is ever held in memory.

    Goes through the prepared cache, then renumbers with one small table. Characters
    `vocab` lacks become its unknown symbol (unknown_in_file names them), or raise
    ChargenError naming them when it has none. For a bytes vocabulary the ids are the
    file's bytes, whatever they are.
    """
    return _renumbered(prepare_corpus(path, vocab=vocab.kind), vocab, val_frac, val_chars, val_files)


def unknown_in_file(path: CorpusPaths, vocab: Vocab, val_frac: float | None = None,
                    val_chars: int = 0, val_files: int = 0) -> list[str]:
    """The distinct characters of the file (or with `val_frac` of its validation tail) that `vocab`
    lacks, in code-point order: the ones encode_file reads as the unknown symbol (none for bytes)."""
    return _unknown(prepare_corpus(path, vocab=vocab.kind), vocab, val_frac, val_chars, val_files)


def encode_file_with_unknown(path: CorpusPaths, vocab: Vocab, val_frac: float | None = None,
                             val_chars: int = 0, val_files: int = 0) -> tuple[torch.Tensor, list[str]]:
    """encode_file's ids and unknown_in_file's characters, from one opening of the cache."""
    prepared = prepare_corpus(path, vocab=vocab.kind)
    part = (val_frac, val_chars, val_files)
    return _renumbered(prepared, vocab, *part), _unknown(prepared, vocab, *part)


def _renumbered(prepared: PreparedCorpus, vocab: Vocab, val_frac: float | None, val_chars: int,
                val_files: int = 0) -> torch.Tensor:
    ids = prepared.ids if val_frac is None else split_prepared(prepared, val_frac, val_chars, val_files)[1]
    if vocab.kind == "bytes":
        return torch.from_numpy(np.asarray(ids).astype(np.int64))
    missing = _missing(prepared.vocab.chars, prepared.counts, vocab)
    if missing and vocab.unk is None:
        vocab.encode("".join(missing))  # raises, naming them
    # The file's own vocabulary always holds U+FFFD; where it does not occur in the file it may be
    # missing from `vocab` too, and its entry (never looked up) is any id.
    present = set(vocab.chars) | set(prepared.counts)
    table = vocab.encode("".join(c if c in present else vocab.chars[0] for c in prepared.vocab.chars)).numpy()
    return torch.from_numpy(table[np.asarray(ids)])  # file id -> model id


def _unknown(prepared: PreparedCorpus, vocab: Vocab, val_frac: float | None, val_chars: int,
             val_files: int = 0) -> list[str]:
    missing = [] if vocab.kind == "bytes" else _missing(prepared.vocab.chars, prepared.counts, vocab)
    if not missing or val_frac is None:
        return missing
    tail = np.asarray(split_prepared(prepared, val_frac, val_chars, val_files)[1])  # (N_val,)
    seen = np.bincount(tail, minlength=len(prepared.vocab)) > 0  # (V_file,)
    return [c for c in missing if seen[prepared.vocab.chars.index(c)]]


def _missing(file_chars: tuple[str, ...], counts: dict[str, int], vocab: Vocab) -> list[str]:
    """The characters that occur in a file (its `counts`) but not in `vocab`, in code-point order."""
    known = set(vocab.chars)
    return [c for c in file_chars if c in counts and c not in known]
