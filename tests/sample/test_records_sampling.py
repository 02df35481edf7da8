"""sample_records: whole records in parallel streams, each cut at its first end symbol, and --unique's
dropping and redrawing."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import plain_ids

from chargen import RECORD_END, ChargenError, CharRNN, ModelConfig, SampleConfig, Vocab, sample_records
from chargen.data.records import records_vocab

VOCAB = records_vocab(["kanelo", "mitosu", "rava"])  # 12 characters with the end and unknown symbols


def model(cell: str = "gru", seed: int = 2) -> CharRNN:
    torch.manual_seed(seed)
    m = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=2, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        m.head.weight.mul_(4)
    return m.eval()


def cut(ids: list[int]) -> tuple[str, bool]:
    end = VOCAB.chars.index(RECORD_END)
    return (VOCAB.decode(ids[: ids.index(end)]), True) if end in ids else (VOCAB.decode(ids), False)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_records_are_the_streams_cut_at_their_first_end_symbol(cell):
    """Each record must be what the plain loop draws in its stream after reading the end symbol and
    the prime from a zero state, up to (not including) its first end symbol; a stream that never
    draws one stops at cfg.length, marked as not ended."""
    m = model(cell)
    cfg = SampleConfig(length=12, temperature=1.0, seed=9, prime="ka", num_samples=7)
    drawn = sample_records(m, VOCAB, cfg)
    steps = plain_ids(m, VOCAB, replace(cfg, prime=RECORD_END + "ka"))  # length x N ids
    expected = [cut([step[i] for step in steps]) for i in range(7)]
    assert list(zip(drawn.records, drawn.ended)) == [("ka" + text, ended) for text, ended in expected]
    assert drawn.drawn == 7 and drawn.known == drawn.repeats == 0
    assert any(drawn.ended) and all(RECORD_END not in r for r in drawn.records)
    assert all(len(r) == 14 for r, e in zip(drawn.records, drawn.ended) if not e)


def test_exclude_drops_known_records_and_repeats_and_draws_more():
    """With `exclude`, no record kept is in it or repeated, the first round's other records are kept in
    order, and further rounds fill the count; the counts add up to what was drawn."""
    m = model()
    cfg = SampleConfig(length=20, temperature=1.3, seed=4, num_samples=6)
    first = sample_records(m, VOCAB, cfg).records
    known = set(first[:3])
    drawn = sample_records(m, VOCAB, cfg, exclude=known)
    assert len(drawn.records) == 6 and not known & set(drawn.records)
    assert len(set(drawn.records)) == 6
    assert drawn.records[:2] == [r for r in first if r not in known][:2]
    assert drawn.known >= 3 and drawn.drawn == 6 + drawn.known + drawn.repeats


def test_redrawing_is_bounded():
    """Greedy sampling draws one record over and over: --unique must stop after max_rounds rounds and
    return the one it found, not loop forever."""
    cfg = SampleConfig(length=20, temperature=0.0, num_samples=5, seed=1)
    drawn = sample_records(model(), VOCAB, cfg, exclude=set(), max_rounds=3)
    assert len(drawn.records) == 1 and drawn.drawn == 15 and drawn.repeats == 14


def test_a_model_without_the_end_symbol_is_refused():
    vocab = Vocab.from_text("abc")
    m = CharRNN(ModelConfig(vocab_size=len(vocab), num_layers=1, hidden_size=4, embedding_dim=3))
    with pytest.raises(ChargenError, match="not trained on records"):
        sample_records(m, vocab, SampleConfig(length=5))
