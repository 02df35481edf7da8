"""Text in, integer ids out: reading a corpus, its character vocabulary, the
contiguous validation split, and the truncated-BPTT stream batches.

It knows nothing about models or training; everything here is plain data.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import ChargenError


UNKNOWN = "\ufffd"  # U+FFFD REPLACEMENT CHARACTER stands for every character dropped as too rare


@dataclass(frozen=True)
class Vocab:
    """The sorted set of characters of a corpus; id i is `chars[i]`.

    `unk`, when set, is one of `chars`: the symbol that characters rarer than the
    corpus' --min-char-count (and any character the model never saw) are encoded as.
    """

    chars: tuple[str, ...]
    unk: str | None = None

    def __post_init__(self) -> None:
        if not self.chars:
            raise ChargenError("the vocabulary is empty", "train on a file that contains text")
        if list(self.chars) != sorted(set(self.chars)) or any(len(c) != 1 for c in self.chars):
            raise ChargenError("the vocabulary is not a sorted set of single characters",
                               "the checkpoint is damaged; train a new model")
        if self.unk is not None and self.unk not in self.chars:
            raise ChargenError("the vocabulary's unknown symbol is not one of its characters",
                               "the checkpoint is damaged; train a new model")

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(tuple(chr(c) for c in np.unique(_code_points(text))))

    @classmethod
    def from_counts(cls, counts: dict[str, int], min_count: int = 1) -> Vocab:
        """Every character seen at least `min_count` times; the rest share the unknown symbol U+FFFD."""
        kept = {c for c, n in counts.items() if n >= min_count}
        if not kept:
            raise ChargenError(f"no character occurs {min_count} times or more", "lower --min-char-count")
        if len(kept) == len(counts):
            return cls(tuple(sorted(kept)))
        return cls(tuple(sorted(kept | {UNKNOWN})), UNKNOWN)

    @property
    def unk_id(self) -> int | None:
        return None if self.unk is None else self.chars.index(self.unk)

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def encode(self, text: str) -> torch.Tensor:
        """Ids of `text` as an int64 tensor (T,).

        A character outside the vocabulary becomes the unknown symbol when the vocabulary
        has one; otherwise ChargenError names the unknown characters.
        """
        cps = _code_points(text)  # (T,)
        table = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        ids = np.minimum(np.searchsorted(table, cps), len(table) - 1)  # (T,) the vocabulary is sorted
        missing = table[ids] != cps
        if missing.any():
            if self.unk is None:
                unknown = self.unknown(text)
                shown = ", ".join(repr(c) for c in unknown[:10])
                more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
                raise ChargenError(f"characters not in the model's vocabulary: {shown}{more}",
                                   "use only characters that occur in the training corpus")
            ids[missing] = self.unk_id
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def _code_points(text: str) -> np.ndarray:
    # UTF-32 turns any Python string into one uint32 per character without a Python-level loop.
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def read_raw(path: str | os.PathLike, limit: int = -1) -> bytes:
    """The bytes of a text file (the first `limit` of them if given), with one ChargenError for
    a folder, a missing file or an unreadable one."""
    path = Path(path)
    if path.is_dir():
        raise ChargenError(f"{path} is a folder, not a text file", "pass the path of a UTF-8 text file")
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise ChargenError(f"corpus not found: {path}", "check the path, e.g. corpora/shakespeare.txt") from None
    except OSError as e:
        raise ChargenError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from None


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 file exactly as stored: '\\r\\n' and '\\n' are kept, a BOM is dropped."""
    path = Path(path)
    raw = read_raw(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ChargenError(f"{path} is not UTF-8 text (bad byte at offset {e.start})",
                           "convert it first, e.g. iconv -f latin1 -t utf-8 IN > OUT") from None
    text = text.removeprefix("\ufeff")
    if not text:
        raise ChargenError(f"{path} is empty", "train on a file that contains text")
    return text


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


class StreamBatcher:
    """Truncated-BPTT batches: the ids cut into `batch_size` parallel streams.

        ids:     a b c d e f g h i j k l m n o p q r s t u v w x   (N ids, B=3 streams)
        stream0: a b c d e f g h  | window 0 | window 1 |
        stream1: i j k l m n o p      x = [:, w*T : w*T+T]
        stream2: q r s t u v w x      y = [:, w*T+1 : w*T+T+1]  (x shifted by one)

    Window w+1 of a stream continues exactly where window w ended, so the hidden
    state the model leaves at the end of one window is the right start for the next.

    With several processes (torchrun), rank r of W takes streams r*B/W .. (r+1)*B/W - 1,
    so the ranks together see exactly the batch one process would.

    `ids` is an int64 tensor, or a numpy array of any integer type (usually the memory
    map of a prepared corpus): then each window is read from it when asked for, and
    only on a GPU with room to spare is the whole array copied to the device once.
    """

    RESIDENT_MAX = 1 << 26  # ids (512 MB as int64) that may live on a GPU instead of being copied per step

    def __init__(self, ids: torch.Tensor | np.ndarray, batch_size: int, seq_len: int, rank: int = 0,
                 world_size: int = 1, device: torch.device | str = "cpu") -> None:
        stream_len = len(ids) // batch_size
        self.windows = (stream_len - 1) // seq_len
        if self.windows < 1:
            need = batch_size * (seq_len + 1)
            raise ChargenError(f"the training text is too short for one batch: {len(ids)} characters, "
                               f"batch size {batch_size} x (sequence length {seq_len} + 1) = {need} needed",
                               "use a longer text, or a smaller --batch-size / --seq-len")
        if batch_size % world_size:
            raise ChargenError(f"batch size {batch_size} does not split evenly over {world_size} processes",
                               f"use a --batch-size that is a multiple of {world_size}")
        self.seq_len, self.device = seq_len, torch.device(device)
        per = batch_size // world_size
        streams = ids[: stream_len * batch_size].reshape(batch_size, stream_len)[rank * per: (rank + 1) * per]
        if isinstance(streams, np.ndarray) and self.device.type == "cuda" and streams.size <= self.RESIDENT_MAX:
            streams = torch.from_numpy(streams.astype(np.int64))
        self.streams = streams.to(self.device) if isinstance(streams, torch.Tensor) else streams  # (B/W, N/B)

    def __len__(self) -> int:
        return self.windows

    def window(self, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of window `w`, each (B/W, T) int64 on the device."""
        start = w * self.seq_len
        block = self.streams[:, start: start + self.seq_len + 1]  # (B/W, T+1)
        if isinstance(block, np.ndarray):  # read from the memory map now: only this window is touched
            block = torch.from_numpy(block.astype(np.int64)).to(self.device, non_blocking=True)
        return block[:, :-1], block[:, 1:]
