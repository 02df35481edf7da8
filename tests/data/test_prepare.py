"""prepare: two-pass encoding in slabs, the on-disk cache, rare characters, the capped validation tail."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import chargen.data.cache as prep
import chargen.data.utf8 as scan
from chargen import ChargenError, SampleConfig, StreamBatcher, Vocab
from chargen.data.cache import prepare_corpus
from chargen.data.corpus import load_corpus
from chargen.data.utf8 import id_dtype, read_pieces
from chargen.data.vocab import UNKNOWN

MIXED = "ab 한국어\r\n😀 x🎉 ß(é)\n마지막"  # 1-, 2-, 3- and 4-byte characters side by side


def write(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_pieces_never_split_a_character(tmp_path):
    """Guards against a read size that cuts a Hangul syllable or an emoji in two: at every read size
    from 1 byte (every boundary position) to past the file, each piece must decode on its own, the
    pieces must add up to the file, and the offsets must be where each piece starts."""
    path = write(tmp_path / "m.txt", MIXED)
    raw = path.read_bytes()
    for size in range(1, len(raw) + 2):
        pieces = list(read_pieces(path, size))
        assert b"".join(p for _, p in pieces) == raw
        assert "".join(p.decode("utf-8") for _, p in pieces) == MIXED
        assert [o for o, _ in pieces] == list(np.cumsum([0] + [len(p) for _, p in pieces[:-1]]))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64])
def test_prepared_ids_equal_in_memory_encoding(tmp_path, monkeypatch, size):
    """The memory-mapped ids must be exactly Vocab.from_text(text).encode(text), whatever the block size."""
    monkeypatch.setattr(scan, "BLOCK_BYTES", size)
    text = MIXED * 3
    p = prepare_corpus(write(tmp_path / "m.txt", text), cache=tmp_path / "cache")
    vocab = Vocab.from_text(text)
    assert p.vocab == vocab and not p.cache_hit
    assert isinstance(p.ids, np.memmap) and p.ids.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(p.ids), vocab.encode(text).numpy())
    assert p.counts == {c: text.count(c) for c in set(text)}


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1, max_size=60).filter(lambda t: t != "\ufeff" and not t.startswith("\ufeff")))
def test_prepare_round_trips_any_unicode(tmp_path_factory, text):
    """Any Unicode text (surrogates excluded by UTF-8 itself) must decode back from its prepared ids."""
    folder = tmp_path_factory.mktemp("rt")
    scan.BLOCK_BYTES, saved = 5, scan.BLOCK_BYTES
    try:
        p = prepare_corpus(write(folder / "t.txt", text), cache=folder / "cache")
    finally:
        scan.BLOCK_BYTES = saved
    assert p.vocab.decode(p.ids) == text


def test_bom_is_dropped_and_crlf_kept(tmp_path):
    p = prepare_corpus(write(tmp_path / "b.txt", "a\r\nb", bom=True), cache=tmp_path / "c")
    assert p.vocab.decode(p.ids) == "a\r\nb"


def test_id_dtype_is_the_smallest_that_fits():
    assert [id_dtype(n) for n in (1, 256, 257, 65536, 65537)] == \
        [np.uint8, np.uint8, np.uint16, np.uint16, np.uint32]


def test_large_vocabulary_uses_uint16(tmp_path):
    text = "".join(chr(0xAC00 + i) for i in range(300)) * 2  # 300 Hangul syllables
    p = prepare_corpus(write(tmp_path / "k.txt", text), cache=tmp_path / "c")
    assert p.ids.dtype == np.uint16 and len(p.vocab) == 301 and p.vocab.unk_id == 300  # and U+FFFD
    np.testing.assert_array_equal(np.asarray(p.ids), np.tile(np.arange(300), 2))


@pytest.mark.parametrize("raw, offset", [
    (b"abc\xffdef", 3),                 # a byte that is never UTF-8
    (b"ab\x80cd", 2),                   # a continuation byte with no lead
    (b"ab\xc3a\xa9", 2),                # a cut character whose tail reappears after an ASCII byte
    (b"ok \xe2\x82", 3),                # a character cut by the end of the file
    ("한국".encode() + b"\xed\xa0\x80", 6),  # an encoded surrogate
])
def test_not_utf8_names_the_byte_offset(tmp_path, monkeypatch, raw, offset):
    """The reported offset must be the first bad byte's, even when the block size puts it mid-piece."""
    monkeypatch.setattr(scan, "BLOCK_BYTES", 3)
    path = tmp_path / "bad.txt"
    path.write_bytes(raw)
    with pytest.raises(ChargenError) as e:
        prepare_corpus(path, cache=tmp_path / "c")
    assert e.value.message == f"{path} is not UTF-8 text (bad byte at offset {offset})"
    assert "iconv" in e.value.hint


@pytest.mark.parametrize("content, message", [(b"", "is empty"), (b"\xef\xbb\xbf", "is empty")])
def test_empty_file_is_refused(tmp_path, content, message):
    path = tmp_path / "e.txt"
    path.write_bytes(content)
    with pytest.raises(ChargenError, match=message):
        prepare_corpus(path, cache=tmp_path / "c")


def test_second_prepare_is_a_cache_hit_without_reading_the_text(tmp_path, monkeypatch):
    """Guards against re-encoding on every run: an unchanged file must open from the cache with no pass."""
    path = write(tmp_path / "m.txt", MIXED * 5)
    first = prepare_corpus(path, cache=tmp_path / "c")
    monkeypatch.setattr(prep, "count_chars", lambda *a, **k: pytest.fail("the text was read again"))
    second = prepare_corpus(path, cache=tmp_path / "c")
    assert second.cache_hit and second.cache_dir == first.cache_dir
    assert second.vocab == first.vocab and second.counts == first.counts
    np.testing.assert_array_equal(np.asarray(second.ids), np.asarray(first.ids))


@pytest.mark.parametrize("edit", ["append", "same_size_same_mtime", "touch"])
def test_cache_is_rebuilt_when_the_file_changes(tmp_path, edit):
    """Guards against training on stale ids: appending, an edit that keeps the size and even the
    mtime (caught by the head/tail hash), or a touch must each rebuild the cache, with the new ids."""
    path = write(tmp_path / "m.txt", "hello world\n" * 10)
    prepare_corpus(path, cache=tmp_path / "c")
    st = path.stat()
    if edit == "append":
        new = "hello world\n" * 10 + "and more 한\n"
        write(path, new)
    elif edit == "same_size_same_mtime":
        new = "jello world\n" + "hello world\n" * 9
        write(path, new)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        new = "hello world\n" * 10
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    p = prepare_corpus(path, cache=tmp_path / "c")
    assert not p.cache_hit
    assert p.vocab.decode(p.ids) == new
    assert prepare_corpus(path, cache=tmp_path / "c").cache_hit


def test_damaged_cache_is_rebuilt(tmp_path):
    path = write(tmp_path / "m.txt", MIXED * 4)
    p = prepare_corpus(path, cache=tmp_path / "c")
    with open(p.cache_dir / "ids.bin", "r+b") as f:
        f.truncate(5)
    again = prepare_corpus(path, cache=tmp_path / "c")
    assert not again.cache_hit and again.vocab.decode(again.ids) == MIXED * 4
    (p.cache_dir / "meta.json").write_text("{not json", encoding="utf-8")
    assert not prepare_corpus(path, cache=tmp_path / "c").cache_hit


def test_unwritable_cache_is_one_error_with_a_hint(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(ChargenError) as e:
        prepare_corpus(write(tmp_path / "m.txt", MIXED), cache=blocker / "sub")
    assert "cannot write the corpus cache" in e.value.message and "CHARGEN_CACHE" in e.value.hint


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGEN_CACHE", str(tmp_path / "env-cache"))
    p = prepare_corpus(write(tmp_path / "m.txt", MIXED))
    assert p.cache_dir.parent == tmp_path / "env-cache" and (p.cache_dir / "ids.bin").is_file()


def test_min_char_count_maps_rare_characters_to_the_unknown_symbol(tmp_path):
    text = "aaaa bbbb 가 😀 aaaa\n"  # '가' and '😀' once each, '\n' once
    p = prepare_corpus(write(tmp_path / "r.txt", text), min_char_count=2, cache=tmp_path / "c")
    assert p.vocab.chars == (" ", "a", "b", UNKNOWN) and p.vocab.unk == UNKNOWN
    assert p.vocab.decode(p.ids) == "".join(c if text.count(c) >= 2 else UNKNOWN for c in text)
    assert p.counts["가"] == 1 and p.counts["a"] == 8  # counts of the file itself, before merging
    # a different threshold is a different cache entry, not a stale hit
    full = prepare_corpus(tmp_path / "r.txt", min_char_count=1, cache=tmp_path / "c")
    assert full.vocab.unk == UNKNOWN and full.vocab.decode(full.ids) == text  # the symbol, though nothing is rare


def test_min_char_count_that_drops_everything_is_refused(tmp_path):
    with pytest.raises(ChargenError, match="no character occurs 99 times"):
        prepare_corpus(write(tmp_path / "r.txt", "abc"), min_char_count=99, cache=tmp_path / "c")


def test_vocab_with_unknown_encodes_unseen_characters_as_unknown():
    vocab = Vocab(("a", "b", UNKNOWN), UNKNOWN)
    assert vocab.encode("ab가a").tolist() == [0, 1, 2, 0]
    with pytest.raises(ChargenError, match="not in the model's vocabulary: '가'"):
        Vocab(("a", "b")).encode("a가")
    with pytest.raises(ChargenError, match="unknown symbol is not one of its characters"):
        Vocab(("a", "b"), UNKNOWN)


def test_val_chars_caps_the_validation_tail(tmp_path):
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    path = write(tmp_path / "v.txt", text)
    capped = load_corpus(path, 0.5, val_chars=100, cache=tmp_path / "c")
    assert Vocab.decode(capped.vocab, capped.val_ids) == text[-100:]
    assert capped.vocab.decode(capped.train_ids) == text[:-100]
    uncapped = load_corpus(path, 0.5, val_chars=0, cache=tmp_path / "c")
    assert len(uncapped.val_ids) == 500 and uncapped.val_ids.dtype == torch.int64


def test_batcher_reads_the_same_windows_from_a_memory_map(tmp_path):
    """The memory-mapped path must give exactly the windows of the in-memory tensor path, as int64."""
    text = MIXED * 20
    p = prepare_corpus(write(tmp_path / "m.txt", text), cache=tmp_path / "c")
    mapped = StreamBatcher(p.ids, 3, 5)
    held = StreamBatcher(torch.from_numpy(np.asarray(p.ids).astype(np.int64)), 3, 5)
    assert len(mapped) == len(held)
    for w in range(len(held)):
        for a, b in zip(mapped.window(w), held.window(w)):
            assert a.dtype == torch.int64 and torch.equal(a, b)


def test_batcher_ranks_split_the_streams_disjointly():
    """Each of W ranks must own B/W consecutive streams; together they are the one-process batch."""
    ids = torch.arange(4 * 50)
    whole = StreamBatcher(ids, 4, 6)
    parts = [StreamBatcher(ids, 4, 6, rank=r, world_size=2) for r in range(2)]
    for w in range(len(whole)):
        x, y = whole.window(w)
        assert torch.equal(torch.cat([p.window(w)[0] for p in parts]), x)
        assert torch.equal(torch.cat([p.window(w)[1] for p in parts]), y)
    with pytest.raises(ChargenError, match="does not split evenly over 3 processes"):
        StreamBatcher(ids, 4, 6, rank=0, world_size=3)


def unk_model(vocab: Vocab):
    """A tiny model whose head strongly prefers the unknown symbol, whatever it reads."""
    from chargen import CharRNN, ModelConfig
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=6,
                                embedding_dim=5, dropout=0.0)).eval()
    with torch.no_grad():
        model.head.bias[vocab.unk_id] = 50.0
    return model


@pytest.mark.parametrize("temperature", [0.0, 1.0, 5.0])
def test_sampling_never_produces_the_unknown_symbol(temperature):
    """Even when the model rates it far above everything else, the unknown symbol is never drawn."""
    from chargen.sample.sampler import generate_ids
    vocab = Vocab(("\n", "a", "b", UNKNOWN), UNKNOWN)
    cfg = SampleConfig(length=200, temperature=temperature, seed=1, num_samples=3)
    ids = torch.stack(list(generate_ids(unk_model(vocab), vocab, cfg)))  # (T, N)
    assert ids.shape == (200, 3) and not (ids == vocab.unk_id).any()


def test_prime_with_unseen_characters_is_read_as_unknown_with_a_warning(tmp_path):
    """`chargen sample --prime` with characters the model never learned warns on stderr and goes on."""
    from typer.testing import CliRunner

    from chargen.cli import app
    from chargen.modelfile.checkpoint import save_checkpoint
    vocab = Vocab(("\n", "a", "b", UNKNOWN), UNKNOWN)
    model = unk_model(vocab)
    save_checkpoint({"model_config": model.config.to_dict(), "vocab": list(vocab.chars), "unk": vocab.unk,
                     "model": model.state_dict()}, tmp_path / "m.pt")
    result = CliRunner().invoke(app, ["sample", str(tmp_path / "m.pt"), "--prime", "ab가😀", "--length", "20",
                                      "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "warning: the model never learned '가', '😀'; read as its unknown symbol U+FFFD\n"
    assert result.stdout.startswith("ab가😀") and UNKNOWN not in result.stdout
    assert len(result.stdout) == len("ab가😀") + 20 + 1


def test_encode_file_renumbers_into_a_models_vocabulary(tmp_path):
    """`chargen eval` reads a file through the cache: the ids must be the model's numbering, not the file's."""
    from chargen.data.corpus import encode_file
    text = "cab\ncab\nbad\n" * 30
    path = write(tmp_path / "e.txt", text)
    model_vocab = Vocab(tuple("\nabcdxyz"))  # a superset, numbered differently from the file's own
    assert torch.equal(encode_file(path, model_vocab), model_vocab.encode(text))
    tail = encode_file(path, model_vocab, val_frac=0.5, val_chars=7)
    assert torch.equal(tail, model_vocab.encode(text[-7:]))
    with pytest.raises(ChargenError, match="not in the model's vocabulary: 'd'"):
        encode_file(path, Vocab(tuple("\nabc")))
    assert encode_file(path, Vocab(tuple("\nabc") + (UNKNOWN,), UNKNOWN)).tolist().count(4) == text.count("d")


def test_encode_file_reads_unseen_characters_as_the_symbol_and_names_them(tmp_path):
    """`chargen eval` with characters the model never learned: they become its unknown symbol (not an error,
    not another character's id), and unknown_in_file names exactly those of the part scored."""
    from chargen.data.corpus import encode_file, unknown_in_file
    text = "ab\u00e9" + "ab\n" * 20 + "b\U0001f600a"  # 'é' only in the head, '😀' only in the tail
    path = write(tmp_path / "u.txt", text)
    vocab = Vocab.from_text("ab\n")  # ('\n', 'a', 'b', U+FFFD)
    assert vocab.decode(encode_file(path, vocab)) == text.replace("\u00e9", UNKNOWN).replace("\U0001f600", UNKNOWN)
    assert unknown_in_file(path, vocab) == ["\u00e9", "\U0001f600"]
    assert vocab.decode(encode_file(path, vocab, val_frac=0.5, val_chars=3)) == "b" + UNKNOWN + "a"
    assert unknown_in_file(path, vocab, val_frac=0.5, val_chars=3) == ["\U0001f600"]
    assert unknown_in_file(path, Vocab.from_text(text)) == []
    # a vocabulary without the symbol is only refused for characters the file holds, never for U+FFFD itself
    assert Vocab(tuple("\nab\u00e9\U0001f600")).decode(encode_file(path, Vocab(tuple("\nab\u00e9\U0001f600")))) == text


def test_a_cache_written_before_the_symbol_is_reused_or_rebuilt(tmp_path):
    """A cache whose vocabulary lacks U+FFFD (written by an older chargen) must gain the symbol without
    renumbering: reused when U+FFFD sorts after every character, rebuilt when it would move ids."""
    import json
    for name, text in [("plain", "abc\n" * 5), ("emoji", "ab\U0001f600\n" * 5)]:
        path = write(tmp_path / f"{name}.txt", text)
        first = prepare_corpus(path, cache=tmp_path / "c")
        meta_path = first.cache_dir / "meta.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["chars"].remove(UNKNOWN)
        meta["unk"] = None
        if name == "emoji":  # the old numbering: the emoji right after 'b'
            (first.cache_dir / "ids.bin").write_bytes(np.asarray(first.ids).clip(max=3).astype(np.uint8).tobytes())
        meta_path.write_text(json.dumps(meta), encoding="utf-8")
        again = prepare_corpus(path, cache=tmp_path / "c")
        assert again.cache_hit == (name == "plain")
        assert again.vocab == Vocab.from_text(text) and again.vocab.decode(again.ids) == text
