"""score_characters and worst_spans: each character's loss under a model, checked against a step-by-step
reference, for chars, bytes and records models."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from chargen.data.records import RECORD_END, encode_records, records_vocab
from chargen.data.vocab import UNKNOWN, Vocab
from chargen.model.charrnn import CharRNN, ModelConfig
from chargen.study.surprise import Surprise, score_characters, worst_spans

TEXT = "Hop on pop.\nPop on hop!\n"


def _model(vocab_size: int, cell: str = "gru") -> CharRNN:
    torch.manual_seed(3)
    return CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, num_layers=2, hidden_size=6, embedding_dim=5,
                               dropout=0.0)).eval()


@torch.no_grad()
def _reference(model: CharRNN, ids: list[int]) -> list[float]:
    """-log p of each id after the ones before it, one step at a time from a zero state (first: nan)."""
    out, hidden = [math.nan], None
    for prev, target in itertools.pairwise(ids):
        logits, hidden = model(torch.tensor([[prev]]), hidden)  # (1, 1, V)
        out.append(-F.log_softmax(logits[0, 0], -1)[target].item())
    return out


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_chars_losses_equal_a_step_by_step_reference(cell):
    vocab = Vocab.from_text(TEXT)
    model = _model(len(vocab), cell)
    got = score_characters(model, vocab, vocab.encode(TEXT), "cpu")
    want = _reference(model, vocab.encode(TEXT).tolist())
    assert got.chars == list(TEXT) and got.units == [1] * len(TEXT) and got.unit == "character"
    assert math.isnan(got.losses[0]) and got.losses[1:] == pytest.approx(want[1:], abs=1e-5)
    assert got.mean_loss == pytest.approx(sum(want[1:]) / (len(TEXT) - 1), abs=1e-6)
    assert not got.records and not got.truncated


def test_bytes_model_is_shown_per_character_with_its_bytes_losses_summed():
    """A character of n bytes is one span whose loss is -log P(all n bytes); the mean stays per byte."""
    vocab, text = Vocab.for_bytes(), "aé€b\n"
    model = _model(256)
    ids = vocab.encode(text)
    got = score_characters(model, vocab, ids, "cpu")
    ref = _reference(model, ids.tolist())
    assert got.chars == list(text) and got.units == [1, 2, 3, 1, 1] and got.unit == "byte"
    assert got.losses[1] == pytest.approx(ref[1] + ref[2], abs=1e-5)
    assert got.losses[2] == pytest.approx(sum(ref[3:6]), abs=1e-5)
    assert got.mean_loss == pytest.approx(sum(ref[1:]) / (len(ref) - 1), abs=1e-6)


def test_bytes_that_are_not_utf8_read_as_the_unknown_symbol_one_byte_each():
    vocab = Vocab.for_bytes()
    got = score_characters(_model(256), vocab, torch.tensor([0x61, 0xC3, 0x28, 0xE2, 0x82]), "cpu")
    assert got.chars == ["a", UNKNOWN, "(", UNKNOWN, UNKNOWN] and got.units == [1] * 5


def test_records_are_scored_each_from_a_zero_state():
    """Record 2's first character is predicted from the end symbol alone, as in training, not from record 1."""
    records = ["hop", "pop on"]
    vocab = records_vocab(records)
    model = _model(len(vocab))
    got = score_characters(model, vocab, encode_records(records, vocab), "cpu")
    assert "".join(got.chars) == RECORD_END + f"hop{RECORD_END}pop on{RECORD_END}" and got.records
    alone = _reference(model, vocab.encode(RECORD_END + "pop on" + RECORD_END).tolist())
    assert got.losses[5:] == pytest.approx(alone[1:], abs=1e-5)
    first = _reference(model, vocab.encode(RECORD_END + "hop" + RECORD_END).tolist())
    assert got.losses[:5][1:] == pytest.approx(first[1:], abs=1e-5)


def test_limit_keeps_the_start_and_says_so():
    vocab = Vocab.from_text(TEXT)
    got = score_characters(_model(len(vocab)), vocab, vocab.encode(TEXT), "cpu", limit=7)
    assert "".join(got.chars) == TEXT[:7] and got.truncated


def test_worst_spans_are_the_largest_windows_none_overlapping():
    """Window sums of width 2: 11 at 3, then 6 at 4 and 5 at 2 overlap it, 2 at 9, and the 1s at 8
    and 10 overlap that; windows with no loss at all are never listed."""
    losses = [math.nan, 0, 0, 5, 6, 0, 0, 0, 0, 1, 1, 0]
    s = Surprise(["x"] * 12, losses, [1] * 12, 1.0, "character", False, False)
    assert worst_spans(s, count=3, width=2) == [(3, 5.5), (9, 1.0)]
    assert worst_spans(s, count=1, width=4) == [(1, 2.75)]  # a tie with 2 goes to the earlier window
