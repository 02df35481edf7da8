"""records.py and record_batches.py: parsing the three modes, the hashed validation split, the
encoded layout, packing by length, padded rows and the batcher's epochs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chargen import ChargenError, TrainConfig
from chargen.data.record_batches import IGNORE, RecordBatcher, pack, padded_rows, sorted_batches
from chargen.data.records import (
    RECORD_END,
    encode_record_file,
    encode_records,
    load_records,
    parse_records,
    records_vocab,
    validation_mask,
)
from chargen.data.vocab import UNKNOWN

NAMES = [a + b + c for a in ("ka", "lo", "mi", "ra") for b in ("ne", "to", "su") for c in ("", "x", "yo")]


# -- parsing ----------------------------------------------------------------------------
def test_lines_are_the_non_blank_lines_without_their_ends():
    """Guards against blank or whitespace-only lines becoming empty records, and a '\\r' of a CRLF file
    staying on every record."""
    parsed = parse_records("Ann\r\nBo\n\n \t\nCarla  \nAnn", "lines")
    assert parsed.records == ["Ann", "Bo", "Carla  ", "Ann"]
    assert (parsed.not_json, parsed.with_end) == (0, 0)


def test_cr_only_line_ends_are_line_ends():
    """Guards against a file with classic Mac OS line ends (CR alone) being read as one huge record;
    a CR inside a CRLF or LF file stays what it was."""
    assert parse_records("Ann\rBo\r\rCarla\r", "lines").records == ["Ann", "Bo", "Carla"]
    assert parse_records("a b\rc\r\rd\r", "paragraphs").records == ["a b\nc", "d"]
    assert parse_records('{"n": "x"}\r{"n": "y"}\r', "jsonl:n").records == ["x", "y"]
    assert parse_records("a\rb\nc", "lines").records == ["a\rb", "c"]


def test_paragraphs_keep_inner_line_ends_and_split_on_blank_lines():
    """Guards against paragraphs losing their inner line breaks (or their CRLF), or a run of blank
    lines making empty records."""
    parsed = parse_records("\n\na b\nc\n\n \n\nd\r\ne\r\n\r\nf\n", "paragraphs")
    assert parsed.records == ["a b\nc", "d\r\ne", "f"]


def test_jsonl_takes_the_string_field_and_counts_the_rest():
    """Guards against a bad line failing the whole file, or being silently dropped without a count:
    every non-blank line that is not an object with a non-empty string field is counted."""
    lines = [json.dumps({"name": "Ann", "x": 1}), "[1, 2]", "not json", json.dumps({"name": 3}),
             json.dumps({"other": "Bo"}), "", json.dumps({"name": ""}), json.dumps({"name": "Bo\nBe"})]
    parsed = parse_records("\n".join(lines), "jsonl:name")
    assert parsed.records == ["Ann", "Bo\nBe"] and parsed.not_json == 5


def test_records_holding_the_end_symbol_are_left_out_and_counted():
    """Guards against a record that contains U+001E, which would end it early for the model."""
    parsed = parse_records(f"Ann\nB{RECORD_END}o\nCy", "lines")
    assert parsed.records == ["Ann", "Cy"] and parsed.with_end == 1


def test_parsing_needs_a_mode():
    with pytest.raises(ChargenError, match="no records mode"):
        parse_records("Ann\n", "")


@pytest.mark.parametrize("mode", ["", "lines", "paragraphs", "jsonl:text", "jsonl:a:b"])
def test_train_config_accepts_the_records_modes(mode):
    assert TrainConfig(records=mode).records == mode


@pytest.mark.parametrize("mode", ["line", "jsonl", "jsonl:", "csv:name", "LINES", 3])
def test_train_config_rejects_other_records_modes(mode):
    """A misspelt mode must fail at once with the accepted forms as the hint, not at the first batch."""
    with pytest.raises(ChargenError) as err:
        TrainConfig(records=mode)
    assert "records" in err.value.message and "jsonl:FIELD" in err.value.hint


# -- the split --------------------------------------------------------------------------
def test_validation_split_is_a_deterministic_share_of_whole_records():
    """Guards against a split that changes between runs (a resume or `eval --split val` would score
    other records), that sends duplicates to both sides, or whose share is far from val_frac."""
    records = [f"name{i}" for i in range(4000)] + ["dup"] * 50
    mask = validation_mask(records, 0.2)
    assert np.array_equal(mask, validation_mask(list(records), 0.2))
    assert 0.17 < mask[:4000].mean() < 0.23
    assert len(set(mask[4000:].tolist())) == 1  # all copies of "dup" on one side
    assert not validation_mask(records, 0.0).any()


def test_validation_split_is_capped_by_val_chars_and_never_empty():
    """val_chars caps the validation part (about that many characters); a tiny corpus still gets one record."""
    records = [f"record-{i:05d}" for i in range(5000)]  # 13 characters each with the end symbol
    capped = validation_mask(records, 0.5, val_chars=1300)
    assert 50 < capped.sum() < 150
    assert validation_mask(["a", "b", "c"], 0.01).sum() == 1


# -- encoding and batches ---------------------------------------------------------------
def test_encoded_records_lie_between_end_symbols():
    """Guards against an off-by-one in starts or sizes: row i is END + record i + END."""
    vocab = records_vocab(["Ann", "Bo", "Carla"])
    assert RECORD_END in vocab.chars and vocab.unk == UNKNOWN
    rs = encode_records(["Ann", "Bo", "Carla"], vocab)
    assert rs.sizes.tolist() == [4, 3, 6] and rs.chars == 13 and rs.count == 3
    for i, text in enumerate(["Ann", "Bo", "Carla"]):
        assert vocab.decode(rs.ids[rs.starts[i]: rs.starts[i] + rs.sizes[i] + 1]) == RECORD_END + text + RECORD_END


def test_padded_rows_are_shifted_records_with_ignored_padding():
    """Targets must be the inputs shifted by one within each record, and IGNORE exactly past its end."""
    vocab = records_vocab(["Ann", "Bo", "Carla"])
    rs = encode_records(["Ann", "Bo", "Carla"], vocab)
    x, y = padded_rows(rs, np.array([1, 2, 0]))
    assert x.shape == y.shape == (3, 6) and x.dtype == y.dtype == torch.int64
    for row, text in zip(range(3), ["Bo", "Carla", "Ann"]):
        n = len(text) + 1
        assert vocab.decode(x[row, :n]) == RECORD_END + text
        assert vocab.decode(y[row, :n]) == text + RECORD_END
        assert (y[row, n:] == IGNORE).all()


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=200), st.integers(1, 300))
def test_pack_covers_every_row_once_within_the_budget(sizes, budget):
    """Every row in exactly one batch, in order; a batch of several rows stays within the budget."""
    sizes = np.sort(np.array(sizes))
    bounds = pack(sizes, budget)
    assert bounds[0] == 0 and bounds[-1] == len(sizes) and (np.diff(bounds) > 0).all()
    for a, b in zip(bounds[:-1], bounds[1:]):
        assert b - a == 1 or (b - a) * sizes[b - 1] <= budget
        # greedy: the next row would not have fitted
        assert b == len(sizes) or (b - a + 1) * sizes[b] > budget


def test_batcher_epochs_cover_every_record_once_and_repeat_by_seed():
    """Guards against an epoch that skips or repeats records, batches of changing number (the epoch
    end would move), or an order that depends on anything but (seed, epoch): a resume must read
    the same batches."""
    vocab = records_vocab(NAMES)
    rs = encode_records(NAMES, vocab)
    batcher = RecordBatcher(rs, budget=30, seed=5)
    epochs = []
    for epoch in (0, 1):
        seen, chars = [], 0
        for w in range(len(batcher)):
            x, y, n = batcher.batch(epoch, w)
            assert x.numel() <= max(30, x.size(1)) and n == int((y != IGNORE).sum())
            seen += [vocab.decode(row[1: int((t != IGNORE).sum())]) for row, t in zip(x, y)]
            chars += n
        assert sorted(seen) == sorted(NAMES) and chars == rs.chars
        epochs.append(seen)
    assert epochs[0] != epochs[1]
    again = RecordBatcher(rs, budget=30, seed=5)
    assert [vocab.decode(r) for r in again.batch(1, 3)[0]] == [vocab.decode(r) for r in batcher.batch(1, 3)[0]]


def test_sorted_batches_visit_every_record_once():
    vocab = records_vocab(NAMES)
    rs = encode_records(NAMES, vocab)
    rows = np.concatenate(list(sorted_batches(rs, 25)))
    assert sorted(rows.tolist()) == list(range(len(NAMES)))


# -- files ------------------------------------------------------------------------------
def test_load_records_splits_and_counts(tmp_path):
    """The two parts hold every kept record once; too long ones and bad jsonl lines are counted."""
    lines = [json.dumps({"t": n}) for n in NAMES] + ["oops", json.dumps({"t": "x" * 50})]
    path = tmp_path / "names.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_records(path, "jsonl:t", val_frac=0.25, max_record_chars=20)
    assert corpus.train.count + corpus.val.count == len(NAMES) and corpus.val.count > 0
    assert corpus.skipped == {"not_json": 1, "surrogates": 0, "with_end": 0, "too_long": 1}
    assert corpus.notes() == ["skipped 1: lines are not JSON objects with a non-empty string 't'",
                              "skipped 1: records are longer than --max-record-chars"]
    val, unknown = encode_record_file(path, corpus.vocab, "jsonl:t", 20, val_frac=0.25)
    assert np.array_equal(val.ids, corpus.val.ids) and unknown == []


def test_without_validation_every_record_trains(tmp_path):
    """--val-frac 0 leaves an empty validation set that is still well formed (no start without a record)."""
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES), encoding="utf-8")
    corpus = load_records(path, "lines", val_frac=0.0)
    assert corpus.train.count == len(NAMES) and corpus.val.count == 0
    assert corpus.val.starts.shape == corpus.val.sizes.shape == (0,) and corpus.val.chars == 0


def test_one_giant_record_is_refused_with_a_hint(tmp_path):
    """A file without blank lines read as paragraphs is one record: the message must say so in one
    line and point at training without --records."""
    path = tmp_path / "book.txt"
    path.write_text("word " * 3000, encoding="utf-8")
    with pytest.raises(ChargenError) as err:
        load_records(path, "paragraphs", 0.1, max_record_chars=4000)
    assert "no record of at most 4,000 characters" in err.value.message and "15,000" in err.value.message
    assert "without --records" in err.value.hint and "\n" not in err.value.message


def test_a_jsonl_file_without_the_field_is_refused(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": "b"}\n{"a": "c"}\n', encoding="utf-8")
    with pytest.raises(ChargenError) as err:
        load_records(path, "jsonl:name", 0.1)
    assert "2 lines are not JSON objects" in err.value.message and "jsonl:FIELD" in err.value.hint
