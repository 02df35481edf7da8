"""Scoring a trained model on a text, as `chargen eval` does: which text (the files given, or a run's
own corpus with its patterns), which part of it (all, or the run's validation split), and which way
(carried streams, record by record, or random windows). The figures come from evaluate.py."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

import torch

from ..data import Sources
from ..data.corpus import encode_file_with_unknown
from ..data.records import encode_record_file
from ..errors import ChargenError
from ..threads import Threads
from ..model import CharRNN
from ..config import TrainConfig
from ..modelfile import Checkpoint
from ..modelfile.state import RunState
from .evaluate import EvalResult, evaluate_carried, evaluate_records, evaluate_windows

SPLITS = ("all", "val")


@dataclass(frozen=True)
class TextScore:
    """What score_text found: the text scored (as Sources names it), the split, the loss over it (per
    character; for a bytes model per byte), the records scored (records models), the loss over random
    windows of `window` characters (0: not asked), and the characters read as the unknown symbol."""

    text: str
    split: str
    scored: EvalResult
    records: int | None = None
    window: int = 0
    windows: EvalResult | None = None
    unknown: list[str] = field(default_factory=list)
    data: Any = field(default=None, repr=False, compare=False)  # what was scored: the ids (T,) or a RecordSet
    sources: Sources | None = field(default=None, repr=False, compare=False)  # the text scored, as read

    def to_dict(self) -> dict:
        """The figures as `chargen eval --json` writes them, losses rounded to 4 places."""
        records = {} if self.records is None else {"records": self.records}
        rows = {"text": self.text, "split": self.split, **records,
                "chars": self.scored.chars, "loss": round(self.scored.loss, 4), "bpc": round(self.scored.bpc, 4)}
        if self.windows is not None:
            rows.update({f"loss_window{self.window}": round(self.windows.loss, 4),
                         f"bpc_window{self.window}": round(self.windows.bpc, 4)})
        return rows


def score_text(model: CharRNN, ckpt: Checkpoint, paths: Sequence[str | os.PathLike], include: Sequence[str] = (),
               exclude: Sequence[str] = (), split: str = "all", window: int = 0,
               device: torch.device | str = "cpu", threads: Threads | None = None) -> TextScore:
    """Loss of `model` (moved to `device`) on the text of `paths`: files, folders and patterns, as train takes them.

    `split="val"` scores only what the run validated on (the checkpoint's val-frac, val-chars and val-files,
    split as training split it); given the run's own corpus without include/exclude patterns, the run's
    patterns choose its files. A records model is scored record by record on its one file; `window` > 0
    also scores random windows of a stream. ChargenError for a bad split or window, or several files
    for a records model."""
    if split not in SPLITS:
        raise ChargenError(f"unknown split {split!r}", "use --split all or --split val")
    if window < 0:
        raise ChargenError(f"window must be 0 (off) or positive, got {window}", "try --window 256")
    stored = ckpt.train_config or TrainConfig()  # a weights-only file: the default split, a stream
    part = (stored.val_frac, stored.val_chars, stored.val_files) if split == "val" else (None, 0, 0)
    if stored.records and window:
        raise ChargenError("--window scores windows of a stream, and this model is scored record by record",
                           "drop --window")
    sources = scored_sources(paths, include, exclude, ckpt.run_state)
    dev = torch.device(device)
    model.to(dev)
    if stored.records:
        records, unknown = encode_record_file(_one_record_file(sources), ckpt.vocab, stored.records,
                                              stored.max_record_chars, *part[:2])
        return TextScore(str(sources), split, evaluate_records(model, records, dev), records.count, unknown=unknown,
                         data=records, sources=sources)
    ids, unknown = encode_file_with_unknown(sources, ckpt.vocab, *part)
    windows = evaluate_windows(model, ids, dev, window=window) if window else None
    carried = evaluate_carried(model, ids, dev, threads=threads)
    return TextScore(str(sources), split, carried, None, window, windows, unknown, ids, sources)


def scored_sources(paths: Sequence[str | os.PathLike], include: Sequence[str], exclude: Sequence[str],
                   stored: RunState) -> Sources:
    """The text scored: the paths given with the patterns given, or, for the run's own corpus given
    without patterns, the run's patterns (the files it read, so that split="val" is its split)."""
    given = tuple(os.fspath(p) for p in paths)
    if include or exclude or stored.corpus != " ".join(os.path.abspath(p) for p in given):
        return Sources(given, tuple(include or ()), tuple(exclude or ()))
    return Sources(given, stored.include, stored.exclude)


def _one_record_file(sources: Sources) -> str:
    """The one file a records model is scored on; ChargenError for several."""
    files = sources.files()
    if len(files) != 1:
        raise ChargenError(f"a records model scores one file, and {sources} is {len(files)} files",
                           "pass the one records file")
    return files[0].path
