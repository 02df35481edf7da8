"""The short sample a run draws at each evaluation, so that a person can watch it learn: drawn
by the Sampler, the one sampling loop, from the training model as it stands. It leaves the run
as it was: the global RNG, the carried state, dropout's mode and the weights (read, not changed).
"""
from __future__ import annotations

import torch

from ..data import RECORD_END, Vocab
from ..model import CharRNN
from .draw import SampleConfig
from .sampler import Sampler

# Below 1 the draw leans to the likelier characters: an early model's sample shows the words and
# line shapes it has learned rather than its noise, and 0.8 still leaves it room not to loop.
SAMPLE_TEMPERATURE = 0.8


def draw_sample(model: CharRNN, vocab: Vocab, device: torch.device, length: int, seed: int,
                temperature: float = SAMPLE_TEMPERATURE, records: bool = False) -> str:
    """`length` ids drawn from `model` after a newline (the first character without one), from a
    zero state, at `temperature`: the text sample_texts gives for the same seed. With `records` (a
    model trained on records) each record starts from a zero state on the end-of-record symbol, as
    in training and as sample_records draws them, and the records are shown one per line.

    The draws come from a generator of their own, seeded with `seed`, so the same weights give the
    same text and the run's random numbers are untouched; the unknown symbol is never drawn. The
    model is put back in the mode it was in; its weights stay where and as they are.
    """
    cfg = SampleConfig(length=length, temperature=temperature, seed=seed)
    was_training = model.training
    try:
        sampler = Sampler(model, vocab, cfg, device)  # eval mode: no dropout in the sample
        if records and RECORD_END in vocab.chars:
            ids = _record_ids(sampler, vocab.chars.index(RECORD_END), length)
            return vocab.decode(ids).replace(RECORD_END, "\n")
        sampler.feed("")
        return vocab.decode(torch.cat(list(sampler.draw(length, ahead=True))).tolist() if length else [])
    finally:
        model.train(was_training)


def _record_ids(sampler: Sampler, end_id: int, length: int) -> list[int]:
    """`length` ids of records one after another, each drawn after the end symbol from a zero state."""
    ids: list[int] = []
    while len(ids) < length:
        sampler.reset()
        sampler.feed(RECORD_END)
        for nxt in sampler.draw(length - len(ids), ahead=True):  # (1,) each
            ids.append(int(nxt))
            if ids[-1] == end_id:
                break
    return ids
