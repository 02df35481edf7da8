"""Whole records from a records model: every stream starts a record from a zero state and ends
where it draws the end-of-record symbol. Many streams are drawn at once by the Sampler, in
chunks, and each is cut at its first end symbol.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch

from ..data import RECORD_END, Vocab
from ..errors import ChargenError
from ..model import CharRNN
from .draw import SampleConfig
from .sampler import Sampler, decode_until_stop, shown_prime

MAX_ROUNDS = 10  # rounds of cfg.num_samples streams that sample_records draws at most to replace dropped records


@dataclass(frozen=True)
class RecordSample:
    """What sample_records drew: the records kept (each the prime and what followed it, without the
    end symbol), whether each ended with the end symbol (else it reached cfg.length), how many
    records were drawn in all, and how many were dropped as known or as repeats. An empty record (the model
    drew the end symbol first, after no prime) is a real outcome, kept and counted: it is one of the
    cfg.num_samples draws, and drawing again would hide how often the model does that."""

    records: list[str]
    ended: list[bool]
    drawn: int
    known: int = 0
    repeats: int = 0

    @property
    def empty(self) -> int:
        """How many of the records are empty."""
        return self.records.count("")


def draw_records(sampler: Sampler, end_id: int, prime: str, length: int) -> list[tuple[str, bool]]:
    """One record per stream of `sampler`: from a zero state, the end symbol and `prime` are read,
    then up to `length` characters drawn; (text, ended) each, text without the end symbol and cut right after
    the sampler's stop (decode_until_stop: for a bytes model, found in the bytes)."""
    sampler.reset()
    sampler.feed(RECORD_END + prime)
    steps = []
    ended = torch.zeros(sampler.cfg.num_samples, dtype=torch.bool)  # (N,)
    for ids in sampler.draw(length, ahead=True):  # (N,) each
        steps.append(ids)
        ended |= ids == end_id
        if bool(ended.all()):  # every record has ended: the rest of the chunk is not needed
            break
    drawn = torch.stack(steps, 1).numpy() if steps else np.zeros((len(ended), 0), dtype=np.int64)  # (N, t)
    out, shown = [], shown_prime(sampler.vocab, prime)
    for row in drawn.tolist():
        end = row.index(end_id) if end_id in row else len(row)
        out.append((shown + decode_until_stop(sampler.vocab, row[:end], sampler.cfg.stop), end < len(row)))
    return out


def sample_records(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu",
                   exclude: Collection[str] | None = None, max_rounds: int = MAX_ROUNDS) -> RecordSample:
    """cfg.num_samples records drawn in as many parallel streams, each at most cfg.length characters
    after the prime (cut right after cfg.stop, when set).

    `cfg.prime` is the beginning of every record. With `exclude` (usually the training records),
    records found in it and repeats of a record already kept are dropped, and new rounds of
    cfg.num_samples streams are drawn until there are cfg.num_samples or `max_rounds` rounds were
    drawn: then fewer are returned. ChargenError for a model without the end symbol.
    """
    if RECORD_END not in vocab.chars:
        raise ChargenError("this model was not trained on records (its vocabulary has no end-of-record symbol)",
                           "sample it without records options, or train with --records")
    sampler = Sampler(model, vocab, cfg, device)
    end_id = vocab.chars.index(RECORD_END)
    kept: list[str]
    want, kept, ended, seen = cfg.num_samples, [], [], set()
    drawn = known = repeats = 0
    for _ in range(max_rounds if exclude is not None else 1):
        for text, done in draw_records(sampler, end_id, cfg.prime, cfg.length):
            if len(kept) == want:
                break
            drawn += 1
            if exclude is not None and text in exclude:
                known += 1
            elif exclude is not None and text in seen:
                repeats += 1
            else:
                kept.append(text)
                ended.append(done)
                seen.add(text)
        if len(kept) == want:
            break
    return RecordSample(kept, ended, drawn, known, repeats)
