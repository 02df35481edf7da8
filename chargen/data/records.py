"""Record corpora: a file read as separate records (its lines, its paragraphs, or one string field
of its JSON lines) that a model learns one by one, each ending in the end-of-record symbol.
This module parses, splits and encodes them; record_batches.py makes training batches of them.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ChargenError
from .text import read_text
from .utf8 import id_dtype
from .vocab import Vocab

RECORD_END = "\x1e"  # U+001E RECORD SEPARATOR: the end-of-record symbol of every records model
MODES_HINT = "use --records lines, paragraphs or jsonl:FIELD"


def check_records_mode(mode: str) -> str:
    """`mode` itself if it names a way to read records ("" = none: the file is one stream), else ChargenError."""
    ok = isinstance(mode, str) and (mode in ("", "lines", "paragraphs")
                                    or (mode.startswith("jsonl:") and len(mode) > len("jsonl:")))
    if not ok:
        raise ChargenError(f"unknown records mode {mode!r}", MODES_HINT)
    return mode


@dataclass(frozen=True)
class RecordText:
    """The records of a file in file order, and what was left out: `not_json` counts the lines of a
    jsonl file that are not a JSON object with a non-empty string field (or nest too deeply to
    read), `surrogates` those whose field holds a lone surrogate ("\\ud83d": half of a character
    cut in two, which is not text), `with_end` the records that hold the end symbol U+001E."""

    records: list[str]
    not_json: int = 0
    with_end: int = 0
    surrogates: int = 0


def parse_records(text: str, mode: str) -> RecordText:
    """The records of `text`. lines: every line that is not blank, without its line end;
    paragraphs: runs of non-blank lines, separated by blank ones (whitespace only), their inner line
    ends kept; jsonl:FIELD: the string FIELD of every line that is a JSON object (blank lines ignored).
    A text whose lines end in CR alone (classic Mac OS) is read with those as its line ends."""
    if not check_records_mode(mode):
        raise ChargenError("no records mode given", MODES_HINT)
    if "\r" in text and "\n" not in text:  # CR-only line ends: otherwise the whole file is one record
        text = text.replace("\r", "\n")
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    not_json = surrogates = 0
    if mode == "lines":
        records = [line for line in lines if line.strip()]
    elif mode == "paragraphs":
        records, paragraph = [], []
        for line, raw in zip(lines, text.split("\n")):
            if line.strip():
                paragraph.append(raw)
            elif paragraph:
                records.append("\n".join(paragraph).removesuffix("\r"))
                paragraph = []
        if paragraph:
            records.append("\n".join(paragraph).removesuffix("\r"))
    else:
        name = mode.split(":", 1)[1]
        records = []
        for line in lines:
            if not line.strip():
                continue
            value = _field(line, name)
            if value and not _encodable(value):
                surrogates += 1
            elif value:
                records.append(value)
            else:
                not_json += 1
    kept = [r for r in records if RECORD_END not in r]
    return RecordText(kept, not_json, len(records) - len(kept), surrogates)


def _encodable(value: str) -> bool:
    """Whether `value` is text that UTF-8 can hold (JSON's escapes can write a lone surrogate; str cannot encode it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field(line: str, name: str) -> str | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        return None
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


def read_records(path: str | os.PathLike, mode: str) -> RecordText:
    """parse_records of a UTF-8 file (read as read_text reads it); ChargenError when it has none."""
    parsed = parse_records(read_text(path), mode)
    if not parsed.records:
        why = f": {parsed.not_json:,} lines are not JSON objects with a string {mode[6:]!r}" if parsed.not_json else ""
        why += f"; {parsed.surrogates:,} hold a lone surrogate (a cut character)" if parsed.surrogates else ""
        hint = "check the field's name in --records jsonl:FIELD" if mode.startswith("jsonl:") else \
            "train without --records to read it as one stream"
        raise ChargenError(f"{path} holds no records for --records {mode}{why}", hint)
    return parsed


def validation_mask(records: list[str], val_frac: float, val_chars: int = 0) -> np.ndarray:
    """Which records (R,) bool form the validation part: those whose text hashes below a share of
    val_frac, or of val_chars characters when that is smaller; at least one when val_frac > 0.

    A hash of the text, not the file's tail: a sorted list (names A to Z) would otherwise be
    scored on its last letters only, and equal records always fall on the same side, so no
    validation record is also trained on. The rule needs nothing but the text, so `chargen eval
    --split val` finds the same records in the same file.
    """
    mask = np.zeros(len(records), dtype=bool)
    if val_frac == 0 or not records:
        return mask
    total = sum(len(r) + 1 for r in records)
    share = min(val_frac, val_chars / total) if val_chars else val_frac
    keys = np.array([_unit_hash(r) for r in records])  # (R,) in [0, 1)
    mask = keys < share
    if not mask.any():  # every copy of the record chosen: one left in training would be validated on
        mask = keys == keys.min()
    return mask


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0 ** 64


@dataclass(frozen=True)
class RecordSet:
    """Records encoded back to back, each after an end symbol: `ids` is END r0 END r1 END ... END.

    Record i's row starts at `starts[i]`, on the end symbol before it, which also starts every
    record (its first character is predicted from it, from a zero state); it spans `sizes[i]` + 1
    ids, and `sizes[i]` (its characters and its end symbol) are the targets it is scored on.
    """

    ids: np.ndarray  # (N,) uint8/16/32
    starts: np.ndarray  # (R,) int64
    sizes: np.ndarray  # (R,) int64

    @property
    def count(self) -> int:
        return len(self.sizes)

    @property
    def chars(self) -> int:
        """The targets of all records: their characters and one end symbol each."""
        return int(self.sizes.sum())


def encode_records(records: list[str], vocab: Vocab) -> RecordSet:
    """`records` in `vocab`'s numbering (characters it lacks as its unknown symbol)."""
    ids = vocab.encode(RECORD_END + "".join(r + RECORD_END for r in records)).numpy()  # (N,)
    sizes = np.array([len(r) + 1 for r in records], dtype=np.int64)  # (R,)
    starts = np.cumsum(sizes) - sizes  # (R,)
    return RecordSet(ids.astype(id_dtype(len(vocab))), starts, sizes)


def records_vocab(records: list[str], min_char_count: int = 1) -> Vocab:
    """The characters of `records` seen at least `min_char_count` times, the unknown symbol and the end symbol."""
    cps, counts = np.unique(np.frombuffer("".join(records).encode("utf-32-le"), dtype=np.uint32), return_counts=True)
    return Vocab.from_counts({chr(c): int(n) for c, n in zip(cps, counts)}, min_char_count, keep=RECORD_END)


@dataclass(frozen=True)
class RecordCorpus:
    """A record corpus split for training: whole records on each side (validation_mask's rule).

    `skipped` counts the records (or jsonl lines) left out, by reason: not_json, surrogates,
    with_end, too_long (more than max_record_chars characters).
    """

    vocab: Vocab
    train: RecordSet
    val: RecordSet
    mode: str
    skipped: dict[str, int] = field(default_factory=dict)
    name: str = ""  # the corpus file's name, kept for a model card

    @property
    def train_ids(self) -> np.ndarray:
        """The training records' ids back to back: as many as the characters they train on, plus one."""
        return self.train.ids

    @property
    def size(self) -> int:
        """Ids on both sides of the split, end symbols included."""
        return len(self.train.ids) + len(self.val.ids)

    def notes(self) -> list[str]:
        """One line per reason records were left out, for a person to read."""
        reasons = {"not_json": f"lines are not JSON objects with a non-empty string {self.mode[6:]!r}",
                   "surrogates": "records hold a lone surrogate such as \\ud83d (half of a cut character): not text",
                   "with_end": "records contain the end-of-record symbol U+001E",
                   "too_long": "records are longer than --max-record-chars"}
        return [f"skipped {n:,}: {reasons[k]}" for k, n in self.skipped.items() if n]


def load_records(path: str | os.PathLike, mode: str, val_frac: float, val_chars: int = 0, min_char_count: int = 1,
                 max_record_chars: int = 4000) -> RecordCorpus:
    """Read the records of the file at `path`, leave out those longer than `max_record_chars`, build
    their vocabulary and split them (validation_mask). ChargenError when none is left, or too few
    for a validation part."""
    parsed = read_records(path, mode)
    kept = [r for r in parsed.records if len(r) <= max_record_chars]
    if not kept:
        longest = max(len(r) for r in parsed.records)
        raise ChargenError(f"{path} has no record of at most {max_record_chars:,} characters with --records {mode} "
                           f"({len(parsed.records):,} records, the longest {longest:,})",
                           "train without --records to read it as one stream, or raise --max-record-chars")
    mask = validation_mask(kept, val_frac, val_chars)
    if val_frac > 0 and mask.all():
        raise ChargenError(f"{path} has too few distinct records for a validation part ({len(kept)})",
                           "use more records or --val-frac 0")
    vocab = records_vocab(kept, min_char_count)
    train = encode_records([r for r, v in zip(kept, mask) if not v], vocab)
    val = encode_records([r for r, v in zip(kept, mask) if v], vocab)
    skipped = {"not_json": parsed.not_json, "surrogates": parsed.surrogates, "with_end": parsed.with_end,
               "too_long": len(parsed.records) - len(kept)}
    return RecordCorpus(vocab, train, val, mode, skipped, Path(path).name)


def encode_record_file(path: str | os.PathLike, vocab: Vocab, mode: str, max_record_chars: int = 4000,
                       val_frac: float | None = None, val_chars: int = 0) -> tuple[RecordSet, list[str]]:
    """The records of a file in a model's numbering (all of them, or with `val_frac` the validation
    part as load_records splits it), leaving out those load_records leaves out, and the characters
    of theirs that `vocab` lacks (read as its unknown symbol)."""
    kept = [r for r in read_records(path, mode).records if len(r) <= max_record_chars]
    if not kept:
        raise ChargenError(f"{path} has no record of at most {max_record_chars:,} characters with --records {mode}",
                           "score a file of shorter records")
    if val_frac is not None:
        mask = validation_mask(kept, val_frac, val_chars)
        kept = [r for r, v in zip(kept, mask) if v]
        if not kept:
            raise ChargenError(f"{path} has no validation part (val-frac 0)", "use --split all")
    return encode_records(kept, vocab), vocab.unknown("".join(kept))
