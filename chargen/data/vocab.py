"""The vocabulary: text to ids and back. A "chars" vocabulary numbers characters, with the
unknown symbol U+FFFD for every character a model did not learn (too rare in its corpus, or
never in it); a "bytes" vocabulary numbers the 256 byte values, so that any file trains.
Plain data: no files, no models."""
from __future__ import annotations

import codecs
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ChargenError

UNKNOWN = "\ufffd"  # U+FFFD REPLACEMENT CHARACTER: every character a model did not learn reads as this
KINDS = ("chars", "bytes")
BYTE_LABELS = tuple(chr(b) for b in range(256))  # a bytes vocabulary's `chars`: byte b read as Latin-1


@dataclass(frozen=True)
class Vocab:
    """The sorted set of characters of a corpus (`kind` "chars"; id i is `chars[i]`), or the
    256 byte values (`kind` "bytes", made by for_bytes; id b is the byte b).

    `unk` is the unknown symbol U+FFFD, one of `chars`: characters rarer than the corpus'
    --min-char-count, and any character the model never saw, are encoded as it, and the
    sampler never draws it. from_text and from_counts always include it; a Vocab built
    directly may lack it (`unk` None, as format-1 checkpoints stored it), and then
    `encode` refuses characters outside `chars`; `with_unknown` adds it.

    A bytes vocabulary knows every byte and has no unknown symbol (`unk` None). Text is
    encoded as its UTF-8 bytes and decoded with U+FFFD for a sequence that is not UTF-8;
    its `chars` are BYTE_LABELS, byte b read as the Latin-1 character chr(b): a label, not
    text (use encode, decode and text_decoder to convert text).
    """

    chars: tuple[str, ...]
    unk: str | None = None
    kind: str = "chars"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ChargenError(f"unknown vocabulary kind {self.kind!r}", "use --vocab chars or --vocab bytes")
        if self.kind == "bytes" and (self.chars != BYTE_LABELS or self.unk is not None):
            raise ChargenError("the byte vocabulary is not the 256 byte values",
                               "the checkpoint is damaged; train a new model")
        if not self.chars:
            raise ChargenError("the vocabulary is empty", "train on a file that contains text")
        if list(self.chars) != sorted(set(self.chars)) or any(len(c) != 1 for c in self.chars):
            raise ChargenError("the vocabulary is not a sorted set of single characters",
                               "the checkpoint is damaged; train a new model")
        if self.unk is not None and self.unk not in self.chars:
            raise ChargenError("the vocabulary's unknown symbol is not one of its characters",
                               "the checkpoint is damaged; train a new model")

    @classmethod
    def for_bytes(cls) -> Vocab:
        """The vocabulary of the 256 byte values."""
        return cls(BYTE_LABELS, None, "bytes")

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """Every character of `text`, and the unknown symbol; ChargenError for an empty text."""
        if not text:
            raise ChargenError("the vocabulary is empty", "train on a file that contains text")
        return cls(tuple(sorted({chr(c) for c in np.unique(_code_points(text))} | {UNKNOWN})), UNKNOWN)

    @classmethod
    def from_counts(cls, counts: dict[str, int], min_count: int = 1, keep: str = "") -> Vocab:
        """Every character seen at least `min_count` times, the characters of `keep` however rare
        (a corpus's file separator), and the unknown symbol U+FFFD that the rest (and any
        character not in `counts`) share."""
        kept = {c for c, n in counts.items() if n >= min_count}
        if not kept:
            raise ChargenError(f"no character occurs {min_count} times or more", "lower --min-char-count")
        return cls(tuple(sorted(kept | set(keep) | {UNKNOWN})), UNKNOWN)

    def with_unknown(self) -> Vocab:
        """This vocabulary with the unknown symbol: itself if it has one (or is a bytes vocabulary,
        which needs none); U+FFFD marked as the symbol if it is already a character; else U+FFFD
        inserted at its sorted position, which shifts the ids of the characters after it (above
        U+FFFD: emoji and other astral characters) up by one."""
        if self.unk is not None or self.kind == "bytes":
            return self
        return Vocab(tuple(sorted(set(self.chars) | {UNKNOWN})), UNKNOWN)

    @property
    def unk_id(self) -> int | None:
        return None if self.unk is None else self.chars.index(self.unk)

    def __len__(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the vocabulary, in order of appearance
        (none for a bytes vocabulary)."""
        if self.kind == "bytes":
            return []
        known = set(self.chars)
        return list(dict.fromkeys(c for c in text if c not in known))

    def encode(self, text: str) -> torch.Tensor:
        """Ids of `text` as an int64 tensor (T,).

        A character outside the vocabulary becomes the unknown symbol (`unknown(text)` names
        them); a vocabulary without one raises ChargenError naming them instead. A bytes
        vocabulary gives the UTF-8 bytes of `text` (T counts bytes), a byte that the command
        line carried as a lone surrogate (Python's surrogateescape) as that byte.
        """
        if self.kind == "bytes":
            return torch.from_numpy(np.frombuffer(utf8_bytes(text), np.uint8).astype(np.int64))
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
        """The text of `ids`; for a bytes vocabulary a sequence that is not UTF-8 reads as U+FFFD."""
        if self.kind == "bytes":
            return bytes(np.asarray(ids, dtype=np.uint8)).decode("utf-8", "replace")
        return "".join(self.chars[int(i)] for i in ids)

    def text_decoder(self) -> TextDecoder:
        """A decoder for ids that arrive a few at a time (a sample as it is drawn)."""
        return TextDecoder(self)

    def labels(self, text: str) -> str:
        """One character per id of encode(text), to show what the model reads at each step: the
        text itself for a chars vocabulary; for bytes, each character at its first byte, U+00B7
        (a middle dot) at each later byte of a multi-byte character, U+FFFD at a byte that is
        not UTF-8."""
        if self.kind == "chars":
            return text
        out = []
        for ch in text:
            n = len(utf8_bytes(ch))
            out.append((UNKNOWN if "\udc80" <= ch <= "\udcff" else ch) + "\u00b7" * (n - 1))
        return "".join(out)


class TextDecoder:
    """Ids to text as they arrive: `decode(ids)` returns the text they complete, `flush()` the
    rest at the end. For a bytes vocabulary a multi-byte character split across calls comes out
    whole once its last byte arrives, and a sequence that is not UTF-8 as U+FFFD."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace") if vocab.kind == "bytes" else None

    def decode(self, ids) -> str:
        if self.utf8 is None:
            return "".join(self.vocab.chars[int(i)] for i in ids)
        return self.utf8.decode(bytes(np.asarray(ids, dtype=np.uint8).reshape(-1)))

    def flush(self) -> str:
        """The text of bytes still waiting for the rest of their character: U+FFFD, or nothing."""
        return "" if self.utf8 is None else self.utf8.decode(b"", final=True)


def utf8_bytes(text: str) -> bytes:
    """`text` in UTF-8; a lone surrogate U+DC80..U+DCFF (how Python carries a byte of a command line
    or file name that is not UTF-8) as the byte it stands for, any other as its three bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # another lone surrogate: rare enough to go character by character
        return b"".join(c.encode("utf-8", "surrogateescape" if "\udc80" <= c <= "\udcff" else "surrogatepass")
                        for c in text)


def _code_points(text: str) -> np.ndarray:
    # UTF-32 turns any Python string into one uint32 per character without a Python-level loop.
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
