"""The character vocabulary: characters to ids and back, with the unknown symbol U+FFFD that
stands for every character a model did not learn (too rare in its corpus, or never in it).
Plain data: no files, no models."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ChargenError

UNKNOWN = "\ufffd"  # U+FFFD REPLACEMENT CHARACTER: every character a model did not learn reads as this


@dataclass(frozen=True)
class Vocab:
    """The sorted set of characters of a corpus; id i is `chars[i]`.

    `unk` is the unknown symbol U+FFFD, one of `chars`: characters rarer than the corpus'
    --min-char-count, and any character the model never saw, are encoded as it, and the
    sampler never draws it. from_text and from_counts always include it; a Vocab built
    directly may lack it (`unk` None, as format-1 checkpoints stored it), and then
    `encode` refuses characters outside `chars`; `with_unknown` adds it.
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
        """Every character of `text`, and the unknown symbol; ChargenError for an empty text."""
        if not text:
            raise ChargenError("the vocabulary is empty", "train on a file that contains text")
        return cls(tuple(sorted({chr(c) for c in np.unique(_code_points(text))} | {UNKNOWN})), UNKNOWN)

    @classmethod
    def from_counts(cls, counts: dict[str, int], min_count: int = 1) -> Vocab:
        """Every character seen at least `min_count` times, and the unknown symbol U+FFFD that the
        rest (and any character not in `counts`) share."""
        kept = {c for c, n in counts.items() if n >= min_count}
        if not kept:
            raise ChargenError(f"no character occurs {min_count} times or more", "lower --min-char-count")
        return cls(tuple(sorted(kept | {UNKNOWN})), UNKNOWN)

    def with_unknown(self) -> Vocab:
        """This vocabulary with the unknown symbol: itself if it has one; U+FFFD marked as the symbol
        if it is already a character; else U+FFFD inserted at its sorted position, which shifts the
        ids of the characters after it (above U+FFFD: emoji and other astral characters) up by one."""
        if self.unk is not None:
            return self
        return Vocab(tuple(sorted(set(self.chars) | {UNKNOWN})), UNKNOWN)

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

        A character outside the vocabulary becomes the unknown symbol (`unknown(text)` names
        them); a vocabulary without one raises ChargenError naming them instead.
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
