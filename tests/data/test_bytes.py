"""The bytes vocabulary: the 256 byte values as ids, any file as a corpus, text decoded incrementally with
U+FFFD for what is not UTF-8, the checkpoint's vocab_kind (format 3), and sampling from a bytes model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chargen import (
    ChargenError,
    CharRNN,
    Checkpoint,
    ModelConfig,
    SampleConfig,
    Vocab,
    generate,
    load_model,
    prepare_corpus,
    read_checkpoint,
    sample_texts,
    train,
)
from chargen.data import FILE_SEPARATOR
from chargen.data.corpus import encode_file_with_unknown
from chargen.data.vocab import BYTE_LABELS, UNKNOWN
from chargen.sample import generate_ids, sample_bytes
from chargen.sample.sampler import text_pieces

BYTES = Vocab.for_bytes()
LATIN1 = "Ça a été très naïve, garçon: « déjà vu » à Noël.\n".encode("latin-1") * 12


def byte_model(seed: int = 0, cell: str = "gru") -> CharRNN:
    torch.manual_seed(seed)
    return CharRNN(ModelConfig(vocab_size=256, cell=cell, num_layers=1, hidden_size=7, embedding_dim=5,
                               dropout=0.0)).eval()


# -- the vocabulary -----------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_round_trip_through_ids(data):
    """Every byte is its own id (no unknown symbol, nothing refused), and decoding is UTF-8 with U+FFFD
    for what is not, exactly as Python decodes the bytes."""
    text = data.decode("utf-8", "surrogateescape")  # how a command line carries bytes that are not UTF-8
    ids = BYTES.encode(text)
    assert ids.dtype == torch.int64 and ids.tolist() == list(data)
    assert BYTES.decode(ids) == data.decode("utf-8", "replace")
    assert BYTES.unknown(text) == [] and len(BYTES.labels(text)) == len(data)


def test_the_byte_vocabulary_is_256_values_without_an_unknown_symbol():
    """A bytes vocabulary knows every byte: no unknown symbol (so the sampler skips nothing), with_unknown
    leaves it alone, and anything else claiming to be one is refused as damaged."""
    assert len(BYTES) == 256 and BYTES.unk is None and BYTES.unk_id is None and BYTES.kind == "bytes"
    assert BYTES.chars == BYTE_LABELS and BYTES.with_unknown() is BYTES and BYTES != Vocab(BYTE_LABELS)
    assert BYTES.encode("é😀").tolist() == [0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80]
    assert BYTES.labels("aé😀") == "aé\u00b7😀\u00b7\u00b7\u00b7"
    with pytest.raises(ChargenError, match="not the 256 byte values"):
        Vocab(BYTE_LABELS[:-1], None, "bytes")
    with pytest.raises(ChargenError, match="not the 256 byte values"):
        Vocab(BYTE_LABELS, UNKNOWN, "bytes")
    with pytest.raises(ChargenError, match="unknown vocabulary kind"):
        Vocab(("a",), None, "words")


def test_a_character_split_across_steps_comes_out_whole():
    """Guards against decoding each drawn byte on its own (which turns every multi-byte character into
    U+FFFD): the text of ids fed one at a time is the text of all of them at once, each character
    appearing with its last byte; a sequence that is not UTF-8, or one cut by the end, is U+FFFD."""
    data = "aé😀한\n".encode() + b"\xff" + b"z" + b"\xe2\x82"
    pieces = list(text_pieces(BYTES, iter(data)))
    assert pieces == ["a", "é", "😀", "한", "\n", UNKNOWN, "z", UNKNOWN]
    assert "".join(pieces) == data.decode("utf-8", "replace") == BYTES.decode(list(data))
    decoder = BYTES.text_decoder()
    assert [decoder.decode([b]) for b in "😀".encode()] == ["", "", "", "😀"] and decoder.flush() == ""


# -- preparing and reading files -------------------------------------------------------------------
def test_a_bytes_corpus_is_the_files_bytes(tmp_path):
    """prepare_corpus(vocab='bytes') takes any file as stored (a BOM and bytes that are not UTF-8 kept), several
    joined with the byte 0x1C; chars and bytes corpora of the same files are different cache entries."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"\xef\xbb\xbfbom")
    (tmp_path / "d" / "b.bin").write_bytes(LATIN1 + bytes(range(256)))
    p = prepare_corpus(tmp_path / "d", vocab="bytes", cache=tmp_path / "c")
    assert p.vocab == BYTES and p.ids.dtype == np.uint8 and not p.cache_hit
    assert bytes(np.asarray(p.ids)) == b"\xef\xbb\xbfbom\x1c" + LATIN1 + bytes(range(256)) + b"\x1c"
    assert p.ends == (7, len(p.ids)) and FILE_SEPARATOR.encode() == b"\x1c"
    again = prepare_corpus(tmp_path / "d", vocab="bytes", cache=tmp_path / "c")
    assert again.cache_hit and again.vocab == BYTES
    with pytest.raises(ChargenError) as e:  # the same folder as characters: not UTF-8
        prepare_corpus(tmp_path / "d", cache=tmp_path / "c")
    assert "b.bin is a binary file" in e.value.message and "--vocab bytes" in e.value.hint
    with pytest.raises(ChargenError, match="a bytes vocabulary keeps all 256"):
        prepare_corpus(tmp_path / "d", min_char_count=2, vocab="bytes", cache=tmp_path / "c")


def test_eval_reads_any_file_in_a_bytes_models_numbering(tmp_path):
    """encode_file for a bytes model: the ids are the file's bytes, the validation tail its last bytes, and
    nothing is unknown."""
    path = tmp_path / "l.txt"
    path.write_bytes(LATIN1)
    ids, unknown = encode_file_with_unknown(path, BYTES)
    assert ids.tolist() == list(LATIN1) and unknown == []
    tail, _ = encode_file_with_unknown(path, BYTES, val_frac=0.5, val_chars=9)
    assert tail.tolist() == list(LATIN1[-9:])


def test_a_latin1_file_trains_with_bytes_and_is_refused_without(tmp_path, make_model_config, make_train_config):
    """A Latin-1 corpus: refused as characters with a hint naming --vocab bytes, trained as bytes into a model
    of 256 ids whose checkpoint says so."""
    path = tmp_path / "latin.txt"
    path.write_bytes(LATIN1 * 3)
    mc, cfg = make_model_config(cell="gru", hidden_size=10), make_train_config(max_steps=4, eval_every=2)
    with pytest.raises(ChargenError) as e:
        train(path, mc, cfg, out=tmp_path / "chars", progress=False)
    assert "is not UTF-8 text" in e.value.message and "--vocab bytes" in e.value.hint
    assert not (tmp_path / "chars").exists()
    result = train(path, mc, make_train_config(max_steps=4, eval_every=2, vocab="bytes"), out=tmp_path / "b",
                   progress=False)
    assert result.steps == 4 and math.isfinite(result.best_val_loss)
    model, vocab, ckpt = load_model(result.run_dir / "best.pt")
    assert vocab == BYTES and model.config.vocab_size == 256 and ckpt.train_config.vocab == "bytes"
    assert read_checkpoint(result.run_dir / "best.pt")["vocab_kind"] == "bytes"


# -- checkpoints --------------------------------------------------------------------------------
def test_a_bytes_checkpoint_round_trips_with_identical_logits(tmp_path):
    """Save and load a bytes model: format 3, vocab_kind 'bytes', no unknown symbol added on reading (a
    format 1 migration applied to it would grow the head to 257), and the same logits exactly."""
    model = byte_model(3, "lstm")
    Checkpoint(model.config, BYTES, model.state_dict()).save(tmp_path / "b.pt")
    raw = read_checkpoint(tmp_path / "b.pt")
    assert (raw["format_version"], raw["vocab_kind"], raw["unk"]) == (4, "bytes", None)
    loaded, vocab, _ = load_model(tmp_path / "b.pt")
    assert vocab == BYTES and loaded.head.out_features == 256
    ids = BYTES.encode("déjà vu 😀")[None]  # (1, T)
    with torch.no_grad():
        assert torch.equal(loaded(ids)[0], model(ids)[0])


def test_a_format_2_file_reads_as_characters(tmp_path):
    """A file without vocab_kind (format 2, or 1) holds a chars vocabulary."""
    vocab = Vocab.from_text("ab\n")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=6, embedding_dim=5))
    state = {"format_version": 2, "model_config": model.config.to_dict(), "vocab": list(vocab.chars),
             "unk": vocab.unk, "model": model.state_dict()}
    torch.save(state, tmp_path / "v2.pt")
    loaded = Checkpoint.read(tmp_path / "v2.pt")
    assert loaded.vocab == vocab and loaded.vocab.kind == "chars" and loaded.format_version == 4


# -- sampling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [0.0, 1.3])
def test_sampling_a_bytes_model_decodes_what_it_draws(temperature):
    """The streamed text, the sampled texts and the raw bytes must all be the same draw: the text is the
    drawn bytes decoded as UTF-8 (U+FFFD for the rest), the raw sample the prime's bytes and the bytes."""
    model = byte_model(5)
    cfg = SampleConfig(length=300, temperature=temperature, seed=11, prime="é")
    drawn = bytes(int(i) for i in generate_ids(model, BYTES, cfg))
    assert len(drawn) == 300
    assert "".join(generate(model, BYTES, cfg)) == drawn.decode("utf-8", "replace")
    assert sample_texts(model, BYTES, cfg) == ["é" + drawn.decode("utf-8", "replace")]
    assert sample_bytes(model, BYTES, cfg) == ["é".encode() + drawn]
    with pytest.raises(ChargenError, match="raw bytes come from a model with a bytes vocabulary"):
        sample_bytes(model, Vocab.from_text("ab"), cfg)


def test_stop_cuts_raw_and_text_samples_after_its_bytes():
    """--stop ends a bytes model's sample right after the first occurrence: in the text, and in the raw bytes
    after its UTF-8 bytes."""
    model = byte_model(2)
    cfg = SampleConfig(length=400, temperature=1.0, seed=3, num_samples=2)
    raw = [bytes(col) for col in zip(*[nxt.tolist() for nxt in generate_ids(model, BYTES, cfg)])]
    stop = next(bytes([b]) for b in raw[0][50:] if b < 0x80)  # an ASCII byte that occurs
    cut = sample_bytes(model, BYTES, SampleConfig(**{**cfg.__dict__, "stop": stop.decode()}))
    for full, got in zip(raw, cut):
        at = full.find(stop)
        assert got == (full if at < 0 else full[: at + 1])
