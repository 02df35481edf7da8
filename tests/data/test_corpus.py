"""corpus.py: Vocab, read_text, split_ids, StreamBatcher."""
from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chargen import ChargenError, StreamBatcher, Vocab, load_corpus, read_text
from chargen.data.corpus import split_ids
from chargen.data.vocab import UNKNOWN

FAST = settings(deadline=None, max_examples=150)


# -- Vocab ------------------------------------------------------------------------------
@FAST
@given(st.text(min_size=1))
@example("한국어 텍스트")  # Hangul syllables
@example("漢字かな交じり文")  # CJK and kana
@example("ok 👍🏽 👨‍👩‍👧")  # emoji beyond the BMP, a skin-tone modifier, a ZWJ sequence
@example("e\u0301 n\u0303 a\u030a")  # combining marks stay separate code points
@example("line one\r\nline two\n\r")  # Windows and Unix line ends, kept as is
@example("\x00\t\ufeff\U0010ffff")
def test_vocab_round_trip_any_unicode(text):
    """Encoding then decoding must give back exactly the text (no normalisation, no dropped \\r)."""
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert vocab.decode(ids.tolist()) == text


@FAST
@given(st.text(min_size=1))
@example("\r\nb\na")
def test_vocab_is_sorted_set_of_characters(text):
    """The vocabulary must be the sorted set of the text's characters and the unknown symbol, so ids are
    stable across runs, and every vocabulary has the symbol even when the text needs none."""
    vocab = Vocab.from_text(text)
    assert vocab.chars == tuple(sorted(set(text) | {UNKNOWN})) and vocab.unk == UNKNOWN
    assert len(vocab) == len(set(text) | {UNKNOWN}) and vocab.chars[vocab.unk_id] == UNKNOWN


@FAST
@given(st.text(min_size=1), st.text())
def test_encode_with_a_larger_vocab(base, extra):
    """Text using a subset of the vocabulary encodes to the ids of its characters in that vocabulary."""
    vocab = Vocab.from_text(base + extra)
    ids = vocab.encode(base)
    assert [vocab.chars[i] for i in ids.tolist()] == list(base)


def test_unknown_characters_become_the_symbol():
    """A character outside the vocabulary must read as the unknown symbol, never as another character's id,
    and `unknown` names each such character once, in order of appearance."""
    vocab = Vocab.from_text("abc")
    assert vocab.decode(vocab.encode("abxyxé\U0001f600")) == "ab" + UNKNOWN * 5
    assert vocab.unknown("abxyxé") == ["x", "y", "é"]


def test_a_vocab_without_the_symbol_names_unknown_characters_once_each():
    """A vocabulary without the symbol (a format 1 checkpoint's, before migration) must name the characters
    it lacks in the error (once each), not turn them into a wrong id."""
    vocab = Vocab(("a", "b", "c"))
    with pytest.raises(ChargenError) as err:
        vocab.encode("abxyxé")
    msg = err.value.message
    assert "'x'" in msg and "'y'" in msg and "'é'" in msg
    assert msg.count("'x'") == 1
    assert "'a'" not in msg and err.value.hint
    assert vocab.unknown("abxyxé") == ["x", "y", "é"]


@pytest.mark.parametrize("chars", [(), ("b", "a"), ("a", "a"), ("ab",)])
def test_vocab_rejects_unsorted_or_bad_chars(chars):
    """A damaged vocabulary (empty, unsorted, duplicated, multi-char) must be refused, not silently misdecode."""
    with pytest.raises(ChargenError):
        Vocab(chars)


@pytest.mark.parametrize("chars, added_at", [
    (("a", "b"), 2),  # below U+FFFD: it goes last, no id moves
    (("a", "\U0001f600"), 1),  # an emoji sorts after U+FFFD and moves up by one
    (("a", UNKNOWN), None),  # already a character: it becomes the symbol, nothing moves
])
def test_with_unknown_inserts_the_symbol_at_its_sorted_place(chars, added_at):
    """with_unknown must give a sorted vocabulary whose symbol is U+FFFD, keep every other character,
    and leave one that already has the symbol as it is."""
    vocab = Vocab(chars).with_unknown()
    assert vocab.unk == UNKNOWN and vocab.chars == tuple(sorted(set(chars) | {UNKNOWN}))
    assert vocab.unk_id == (added_at if added_at is not None else chars.index(UNKNOWN))
    assert len(vocab) == len(chars) + (added_at is not None)
    assert vocab.with_unknown() is vocab


def test_empty_text_has_no_vocabulary():
    """An empty text must not give a vocabulary of the unknown symbol alone."""
    with pytest.raises(ChargenError, match="empty"):
        Vocab.from_text("")


# -- read_text --------------------------------------------------------------------------
def test_read_text_keeps_crlf_and_drops_bom(tmp_path):
    """A BOM is not text (drop it); \\r\\n is text (keep it): a newline-translating read would change the vocab."""
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffhi\r\nthere\n".encode("utf-8"))
    assert read_text(path) == "hi\r\nthere\n"


@pytest.mark.parametrize("case, needle", [
    ("missing", "not found"), ("folder", "folder"), ("empty", "empty"), ("bom_only", "empty"),
    ("latin1", "UTF-8"),
])
def test_read_text_errors(tmp_path, case, needle):
    """Each unreadable corpus must raise ChargenError with a message saying what is wrong, and a hint."""
    path = tmp_path / "corpus.txt"
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "bom_only":
        path.write_bytes(b"\xef\xbb\xbf")
    elif case == "latin1":
        path.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    with pytest.raises(ChargenError) as err:
        read_text(path)
    assert needle in err.value.message
    assert str(path) in err.value.message
    assert err.value.hint


def test_load_corpus_splits_encoded_text(tmp_path):
    """load_corpus must encode the whole text and cut the validation set from its end."""
    path = tmp_path / "t.txt"
    text = "abcdefghij" * 3
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path, 0.2)
    assert corpus.vocab.decode(corpus.train_ids) == text[:24]
    assert corpus.vocab.decode(corpus.val_ids) == text[24:]


def test_load_corpus_too_short_for_validation(tmp_path):
    """A validation split of fewer than 2 characters cannot be scored and must be refused up front."""
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij", encoding="utf-8")
    with pytest.raises(ChargenError, match="too short for a validation split"):
        load_corpus(path, 0.1)
    assert len(load_corpus(path, 0.0).val_ids) == 0


# -- split_ids --------------------------------------------------------------------------
@FAST
@given(st.integers(0, 500), st.floats(0.0, 0.9))
def test_split_ids_is_contiguous_tail(n, frac):
    """Validation must be the contiguous last int(n*frac) ids, and train+val must be the ids unchanged."""
    ids = torch.arange(n)
    train, val = split_ids(ids, frac)
    assert len(val) == int(n * frac)
    assert torch.equal(torch.cat([train, val]), ids)
    assert torch.equal(val, ids[n - len(val):])


# -- StreamBatcher ----------------------------------------------------------------------
@FAST
@given(n=st.integers(1, 400), batch=st.integers(1, 9), seq=st.integers(1, 13))
def test_stream_batches_cover_each_stream_in_order(n, batch, seq):
    """Each stream's windows, concatenated, must be that stream's ids in order; targets are inputs shifted by one."""
    ids = torch.arange(n) * 3 + 1  # distinct ids, so any reordering shows
    stream_len = n // batch
    if (stream_len - 1) // seq < 1:
        with pytest.raises(ChargenError):
            StreamBatcher(ids, batch, seq)
        return
    batcher = StreamBatcher(ids, batch, seq)
    windows = [batcher.window(w) for w in range(len(batcher))]
    assert len(batcher) == (stream_len - 1) // seq
    covered = len(batcher) * seq
    for x, y in windows:
        assert x.shape == (batch, seq) and y.shape == (batch, seq)
    xs = torch.cat([x for x, _ in windows], dim=1)  # (B, W*T)
    ys = torch.cat([y for _, y in windows], dim=1)  # (B, W*T)
    for b in range(batch):
        stream = ids[b * stream_len: (b + 1) * stream_len]
        assert torch.equal(xs[b], stream[:covered])
        assert torch.equal(ys[b], stream[1: covered + 1])


def test_stream_batcher_layout_matches_diagram():
    """B=3 streams of 8 ids, T=3: stream 1 starts at id 8, window 1 of stream 2 is ids 19..21."""
    batcher = StreamBatcher(torch.arange(25), 3, 3)
    assert len(batcher) == 2
    x, y = batcher.window(1)
    assert x.tolist() == [[3, 4, 5], [11, 12, 13], [19, 20, 21]]
    assert y.tolist() == [[4, 5, 6], [12, 13, 14], [20, 21, 22]]


def test_stream_batcher_too_short_names_batch_size():
    """A text shorter than batch_size*(seq_len+1) must raise a ChargenError that explains the batch arithmetic."""
    with pytest.raises(ChargenError) as err:
        StreamBatcher(torch.arange(40), 4, 10)
    assert "batch size 4" in err.value.message and "44" in err.value.message
    assert "--batch-size" in err.value.hint
