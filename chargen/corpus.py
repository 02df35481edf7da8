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


@dataclass(frozen=True)
class Vocab:
    """The sorted set of characters of a corpus; id i is `chars[i]`."""

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.chars:
            raise ChargenError("the vocabulary is empty", "train on a file that contains text")
        if list(self.chars) != sorted(set(self.chars)) or any(len(c) != 1 for c in self.chars):
            raise ChargenError("the vocabulary is not a sorted set of single characters",
                               "the checkpoint is damaged; train a new model")

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(tuple(chr(c) for c in np.unique(_code_points(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance."""
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def encode(self, text: str) -> torch.Tensor:
        """Ids of `text` as an int64 tensor (T,); raises ChargenError naming unknown characters."""
        missing = self.unknown(text)
        if missing:
            shown = ", ".join(repr(c) for c in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ChargenError(f"characters not in the model's vocabulary: {shown}{more}",
                               "use only characters that occur in the training corpus")
        table = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        ids = np.searchsorted(table, _code_points(text))  # (T,) the vocabulary is sorted by code point
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def _code_points(text: str) -> np.ndarray:
    # UTF-32 turns any Python string into one uint32 per character without a Python-level loop.
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 file exactly as stored: '\\r\\n' and '\\n' are kept, a BOM is dropped."""
    path = Path(path)
    if path.is_dir():
        raise ChargenError(f"{path} is a folder, not a text file", "pass the path of a UTF-8 text file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ChargenError(f"corpus not found: {path}", "check the path, e.g. corpora/shakespeare.txt") from None
    except OSError as e:
        raise ChargenError(f"cannot read {path}: {e.strerror}", "check the file's permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ChargenError(f"{path} is not UTF-8 text (bad byte at offset {e.start})",
                           "convert it first, e.g. iconv -f latin1 -t utf-8 IN > OUT") from None
    text = text.removeprefix("\ufeff")
    if not text:
        raise ChargenError(f"{path} is empty", "train on a file that contains text")
    return text


@dataclass(frozen=True)
class Corpus:
    """A text's vocabulary and its ids, split into a training head and a validation tail."""

    vocab: Vocab
    train_ids: torch.Tensor  # (N_train,) int64
    val_ids: torch.Tensor  # (N_val,) int64


def split_ids(ids: torch.Tensor, val_frac: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split into (train, val) where val is the contiguous last `val_frac` of the ids.

    A contiguous tail, not random windows, so that no validation text leaks into
    training through overlapping context, and figures compare with published ones.
    """
    n_val = int(len(ids) * val_frac)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]


def load_corpus(path: str | os.PathLike, val_frac: float) -> Corpus:
    text = read_text(path)
    vocab = Vocab.from_text(text)
    train_ids, val_ids = split_ids(vocab.encode(text), val_frac)
    if val_frac > 0 and len(val_ids) < 2:
        raise ChargenError(f"{path} is too short for a validation split ({len(text)} characters)",
                           "use a longer text or --val-frac 0")
    return Corpus(vocab, train_ids, val_ids)


class StreamBatcher:
    """Truncated-BPTT batches: the ids cut into `batch_size` parallel streams.

        ids:     a b c d e f g h i j k l m n o p q r s t u v w x   (N ids, B=3 streams)
        stream0: a b c d e f g h  | window 0 | window 1 |
        stream1: i j k l m n o p      x = [:, w*T : w*T+T]
        stream2: q r s t u v w x      y = [:, w*T+1 : w*T+T+1]  (x shifted by one)

    Window w+1 of a stream continues exactly where window w ended, so the hidden
    state the model leaves at the end of one window is the right start for the next.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int) -> None:
        stream_len = len(ids) // batch_size
        self.windows = (stream_len - 1) // seq_len
        if self.windows < 1:
            need = batch_size * (seq_len + 1)
            raise ChargenError(f"the training text is too short for one batch: {len(ids)} characters, "
                               f"batch size {batch_size} x (sequence length {seq_len} + 1) = {need} needed",
                               "use a longer text, or a smaller --batch-size / --seq-len")
        self.seq_len = seq_len
        self.streams = ids[: stream_len * batch_size].view(batch_size, stream_len)  # (B, N/B)

    def __len__(self) -> int:
        return self.windows

    def window(self, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of window `w`, each (B, T)."""
        start = w * self.seq_len
        x = self.streams[:, start: start + self.seq_len]  # (B, T)
        y = self.streams[:, start + 1: start + self.seq_len + 1]  # (B, T)
        return x, y
