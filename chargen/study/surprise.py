"""Where a model is surprised: the loss of each character of a text under the model, state carried,
and the worst-predicted spans; `chargen eval --html` draws them (surprise_page.py renders the page).

A bytes model is scored per byte and shown per character: a character's loss is the sum of its
bytes' losses, -log P(the whole character), so its page reads like a chars model's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.records import RecordSet
from ..data.vocab import UNKNOWN, Vocab
from ..model.charrnn import CharRNN
from ..training.evaluate import eval_mode

MAX_UNITS = 20_000  # ids scored and shown: a page of one span per character stays a few MB at most
SPAN = 8  # characters per worst-predicted span


@dataclass(frozen=True)
class Surprise:
    """Per shown character: its text, loss in nats (nan where nothing predicted it: the first
    character of a stream) and the ids it spans; `mean_loss` is per model unit (byte or character),
    as `chargen eval` reports it, over the units shown."""

    chars: list[str]
    losses: list[float]
    units: list[int]  # model units (ids) per character: 1, or 1 to 4 bytes
    mean_loss: float
    unit: str  # "character" or "byte"
    records: bool
    truncated: bool  # the text was longer than MAX_UNITS ids and only its start is shown


@torch.no_grad()
def segment_losses(model: CharRNN, ids: torch.Tensor, device, segments: list[tuple[int, int]],
                   chunk: int = 512) -> np.ndarray:
    """Loss (nats) of each id of `ids` (N,) predicted from the ids before it; each segment
    [start, end] (inclusive) runs from a zero state, its first id unscored; ids in no segment's
    targets stay nan."""
    out = np.full(len(ids), math.nan)
    with eval_mode(model):
        for start, end in segments:
            hidden = None
            for a in range(start, end, chunk):
                b = min(a + chunk, end)
                x = ids[a:b].to(device).unsqueeze(0)  # (1, t)
                y = ids[a + 1: b + 1].to(device)  # (t,)
                logits, hidden = model(x, hidden)  # (1, t, V)
                nll = F.cross_entropy(logits[0].float(), y.long(), reduction="none")  # (t,)
                out[a + 1: b + 1] = nll.cpu().numpy()
    return out


def score_characters(model: CharRNN, vocab: Vocab, scored: torch.Tensor | RecordSet, device,
               limit: int = MAX_UNITS) -> Surprise:
    """The surprise of the first `limit` ids of `scored`: a stream's ids (one stream, state
    carried from its start) or a RecordSet (each record from a zero state, as it was trained)."""
    if isinstance(scored, RecordSet):
        ids = torch.as_tensor(scored.ids[:limit + 1].astype(np.int64))
        ends = [int(s + n) for s, n in zip(scored.starts, scored.sizes)]
        segments = [(int(s), min(e, len(ids) - 1)) for s, e in zip(scored.starts, ends) if s < len(ids) - 1]
        truncated = len(scored.ids) > len(ids)
    else:
        ids = scored[:limit].long()
        segments, truncated = [(0, len(ids) - 1)], len(scored) > len(ids)
    losses = segment_losses(model, ids, device, segments)
    chars, units = _characters(vocab, ids.tolist())
    per_char, at = [], 0
    for n in units:
        part = losses[at: at + n]
        per_char.append(math.nan if np.isnan(part).all() else float(np.nansum(part)))
        at += n
    mean = float(np.nanmean(losses)) if np.isfinite(losses).any() else math.nan
    return Surprise(chars, per_char, units, mean, "byte" if vocab.kind == "bytes" else "character",
                    isinstance(scored, RecordSet), truncated)


def _characters(vocab: Vocab, ids: list[int]) -> tuple[list[str], list[int]]:
    """The text of `ids` as characters and the ids each spans: a byte sequence that is not
    UTF-8 reads as U+FFFD, one byte each."""
    if vocab.kind != "bytes":
        return [vocab.chars[i] for i in ids], [1] * len(ids)
    chars, units, at = [], [], 0
    while at < len(ids):
        lead = ids[at]
        n = 1 if lead < 0x80 else 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if lead >= 0xF0 else 1
        try:
            ch = bytes(ids[at: at + n]).decode("utf-8")
        except UnicodeDecodeError:
            ch, n = UNKNOWN, 1
        if len(ch) != 1:  # a lead byte cut off by the end of the text
            ch, n = UNKNOWN, 1
        chars.append(ch)
        units.append(n)
        at += n
    return chars, units


def worst_spans(surprise: Surprise, count: int = 10, width: int = SPAN) -> list[tuple[int, float]]:
    """The `count` windows of `width` characters with the largest total loss, none overlapping
    another: (first character's index, mean loss in nats per character), worst first."""
    losses = np.nan_to_num(np.asarray(surprise.losses, dtype=float), nan=0.0)
    if len(losses) == 0:
        return []
    width = min(width, len(losses))
    sums = np.convolve(losses, np.ones(width), mode="valid")  # (N - width + 1,)
    taken = np.zeros(len(losses), dtype=bool)
    spans: list[tuple[int, float]] = []
    for start in np.argsort(-sums, kind="stable"):
        if len(spans) == count:
            break
        if not taken[start: start + width].any() and sums[start] > 0:
            taken[start: start + width] = True
            spans.append((int(start), float(sums[start] / width)))
    return spans

