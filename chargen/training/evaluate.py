"""Validation loss of a model on a sequence of ids, in nats and bits per character.

Two ways, both common in the literature: the whole text in a few parallel streams
with the hidden state carried (an RNN's natural loss), and random fixed-length
windows each started from a zero state (how nanoGPT reports its figures). A records
model is scored a third way: each whole record from a zero state, as it was trained.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.record_batches import IGNORE, padded_rows, sorted_batches
from ..data.records import RecordSet
from ..errors import ChargenError
from ..model.charrnn import CharRNN
from ..threads import Threads


@dataclass(frozen=True)
class EvalResult:
    loss: float  # nats per character
    chars: int  # characters scored

    @property
    def bpc(self) -> float:
        return self.loss / math.log(2)


@contextmanager
def eval_mode(model: CharRNN):
    """Dropout off while scoring; the caller's mode back afterwards, whatever happens."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate_carried(model: CharRNN, ids: torch.Tensor, device: torch.device,
                     streams: int = 16, chunk: int = 512, threads: Threads | None = None) -> EvalResult:
    """Mean loss over `ids` cut into `streams` parallel streams, state carried chunk to chunk.

    Only one chunk (streams x chunk ids) is on the device at a time, so a long text
    never has to fit in device memory. The first id of each stream has no context
    and is not scored; a remainder shorter than `streams` is dropped. `threads`, when given,
    times each chunk and follows the machine (chargen/threads.py), and is restored at the end.
    """
    streams = max(1, min(streams, len(ids) // 2))
    stream_len = len(ids) // streams
    if stream_len < 2:
        raise ChargenError(f"text too short to evaluate ({len(ids)} characters)", "use a longer text")
    data = ids[: stream_len * streams].view(streams, stream_len)  # (S, N/S), stays where it is
    hidden, total = None, 0.0
    threads = threads or Threads.for_loop(0, adapt=False)  # none given: the count torch has, kept
    with eval_mode(model):
        for start in range(0, stream_len - 1, chunk):
            t0 = time.perf_counter()
            end = min(start + chunk, stream_len - 1)
            x = data[:, start:end].to(device)  # (S, t)
            y = data[:, start + 1: end + 1].to(device)  # (S, t)
            logits, hidden = model(x, hidden)  # (S, t, V)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
            threads.step(time.perf_counter() - t0)
    threads.restore()
    scored = (stream_len - 1) * streams
    return EvalResult(total / scored, scored)


@torch.no_grad()
def evaluate_windows(model: CharRNN, ids: torch.Tensor, device: torch.device, window: int = 256,
                     count: int = 256, batch: int = 64, seed: int = 1) -> EvalResult:
    """Mean loss over `count` random windows of `window` characters, each from a zero state."""
    if len(ids) < window + 1:
        raise ChargenError(f"text too short for {window}-character windows ({len(ids)} characters)",
                           "use a smaller --window or a longer text")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(ids) - window, (count,), generator=gen)  # (count,)
    offsets = torch.arange(window + 1)  # (W+1,)
    total = 0.0
    with eval_mode(model):
        for i in range(0, count, batch):
            rows = ids[starts[i: i + batch, None] + offsets].to(device)  # (b, W+1)
            logits, _ = model(rows[:, :-1])  # (b, W, V)
            total += F.cross_entropy(logits.float().flatten(0, 1), rows[:, 1:].flatten(), reduction="sum").item()
    return EvalResult(total / (count * window), count * window)


@torch.no_grad()
def evaluate_records(model: CharRNN, records: RecordSet, device: torch.device, budget: int = 1 << 14,
                     chunk: int = 512) -> EvalResult:
    """Mean loss per character over whole records, each from a zero state, its end symbol scored
    (its first character is predicted from the end symbol that starts it, as in training).

    Batches of about `budget` padded ids, run `chunk` steps at a time with the state carried,
    so that a long record never holds more than a chunk's logits.
    """
    if records.count == 0:
        raise ChargenError("no records to evaluate", "score a file that holds records")
    total = 0.0
    with eval_mode(model):
        for rows in sorted_batches(records, budget):
            x, y = padded_rows(records, rows, device)  # (R, T) each
            hidden = None
            for start in range(0, x.size(1), chunk):
                logits, hidden = model(x[:, start: start + chunk], hidden)  # (R, t, V)
                total += F.cross_entropy(logits.float().flatten(0, 1), y[:, start: start + chunk].flatten(),
                                         ignore_index=IGNORE, reduction="sum").item()
    return EvalResult(total / records.chars, records.chars)
