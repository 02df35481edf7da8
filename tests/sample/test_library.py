"""The library functions behind `chargen sample` and `chargen eval`, called from Python with exact
values, and the small helpers written once: cutting at a stop string, writing a file whole, NaN as
None, and a file read as a bytes model reads it."""
from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import pytest
import torch

from chargen import (
    ChargenError,
    CharRNN,
    ModelConfig,
    SampleConfig,
    Sources,
    TextScore,
    Vocab,
    evaluate_carried,
    evaluate_windows,
    generate,
    load_model,
    sample_texts,
    score_text,
    training_records,
    write_raw,
    write_samples,
)
from chargen.data.text import read_model_text
from chargen.fileio import atomic_write, finite_or_none
from chargen.sample import sample_bytes
from chargen.sample.sampler import cut_at_stop, stop_after

VOCAB = Vocab.from_text("abcdef\n")  # V = 8 with the unknown symbol
CPU = torch.device("cpu")


def tiny(vocab: Vocab = VOCAB) -> CharRNN:
    torch.manual_seed(5)
    return CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=2, hidden_size=6, embedding_dim=5))


# -- the helpers -------------------------------------------------------------------------------
def test_cut_at_stop_cuts_text_and_bytes_right_after_the_first_stop():
    """Guards against the copies that cut text and bytes each their own way: one helper, both kinds."""
    assert cut_at_stop("abcabca", "ca") == "abca"
    assert cut_at_stop(b"ab\x00cd\x00", b"\x00") == b"ab\x00"
    assert cut_at_stop("abc", "") == "abc" and cut_at_stop("abc", "x") == "abc"


def test_stop_after_finds_a_stop_split_over_items_of_text_or_bytes():
    """A stop whose characters (or bytes) arrive in different items still ends the stream right after it."""
    assert list(stop_after(iter(["ab", "cX", "Yd", "e"]), "XY")) == ["ab", "cX", "Y"]
    assert list(stop_after(iter([b"a", b"\xff", b"\xfe", b"b"]), b"\xff\xfe")) == [b"a", b"\xff", b"\xfe"]
    assert list(stop_after(iter(["ab", "c"]), "")) == ["ab", "c"]


def test_atomic_write_replaces_a_file_whole_or_not_at_all(tmp_path):
    """Guards against a half-written file: the new contents arrive whole and readable by others (0644), and
    a failure inside the block leaves the old file as it was and no temporary file behind."""
    path = tmp_path / "page.html"
    path.write_text("old", encoding="utf-8")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("new")
    assert path.read_text(encoding="utf-8") == "new" and path.stat().st_mode & 0o777 == 0o644
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_write(path, "wb", fsync=True) as f:
            f.write(b"half")
            raise RuntimeError("crash")
    assert path.read_text(encoding="utf-8") == "new" and [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_finite_or_none_turns_what_json_cannot_hold_into_none():
    assert finite_or_none(math.nan) is None and finite_or_none(-math.inf, 4) is None
    assert finite_or_none(1.234567, 4) == 1.2346 and finite_or_none(1.234567) == 1.234567


def test_read_model_text_reads_any_bytes_for_a_bytes_model(tmp_path):
    """A bytes model reads a file that is not UTF-8 byte for byte; a chars model refuses it in one line."""
    path = tmp_path / "prime.bin"
    path.write_bytes(b"ab\xffc")
    text = read_model_text(path, "bytes")
    assert text == "ab\udcffc" and Vocab.for_bytes().encode(text).tolist() == [97, 98, 255, 99]
    with pytest.raises(ChargenError) as err:
        read_model_text(path, "chars", what="prime file")
    assert err.value.message == f"{path} is not UTF-8 text (bad byte at offset 2)"


# -- sampling to a file object -------------------------------------------------------------------
def test_write_samples_streams_one_sample_as_generate_draws_it():
    model, cfg = tiny(), SampleConfig(length=30, prime="ab", seed=3)
    out = io.StringIO()
    write_samples(model, VOCAB, cfg, out)
    assert out.getvalue() == "ab" + "".join(generate(model, VOCAB, cfg)) + "\n" and len(out.getvalue()) == 33


def test_write_samples_heads_several_samples_or_writes_json_lines():
    model, cfg = tiny(), SampleConfig(length=12, seed=4, num_samples=2, temperature=1.5)
    texts = sample_texts(model, VOCAB, cfg)
    assert texts[0] != texts[1]
    headed, lines = io.StringIO(), io.StringIO()
    write_samples(model, VOCAB, cfg, headed)
    write_samples(model, VOCAB, cfg, lines, jsonl=True)
    assert headed.getvalue() == f"----- sample 1 -----\n{texts[0]}\n\n----- sample 2 -----\n{texts[1]}\n"
    assert [json.loads(line) for line in lines.getvalue().splitlines()] == [{"sample": 1, "text": texts[0]},
                                                                             {"sample": 2, "text": texts[1]}]


def test_write_raw_writes_a_bytes_models_draws_exactly():
    """One sample streamed byte by byte without a final newline, ending right after --stop's byte; several
    headed; the very bytes sample_bytes draws. A chars model is refused in one line."""
    vocab = Vocab.for_bytes()
    model, cfg = tiny(vocab), SampleConfig(length=40, prime="h\udcff", seed=2, temperature=2.0)
    one = io.BytesIO()
    write_raw(model, vocab, cfg, one)
    (drawn,) = sample_bytes(model, vocab, cfg)
    assert one.getvalue() == drawn and drawn[:2] == b"h\xff" and len(drawn) == 42
    byte = drawn[12]
    stopped = io.BytesIO()
    write_raw(model, vocab, replace(cfg, stop=chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)), stopped)
    assert stopped.getvalue() == drawn[: drawn.index(bytes([byte]), 2) + 1]
    several, cfg2 = io.BytesIO(), replace(cfg, num_samples=2)
    write_raw(model, vocab, cfg2, several)
    first, second = sample_bytes(model, vocab, cfg2)
    assert several.getvalue() == b"----- sample 1 -----\n" + first + b"\n\n----- sample 2 -----\n" + second + b"\n"
    with pytest.raises(ChargenError) as err:
        write_raw(tiny(), VOCAB, cfg, io.BytesIO())
    assert err.value.message == "raw bytes come from a model with a bytes vocabulary, and this one reads characters"


def test_training_records_are_the_corpus_records_or_a_one_line_error(tmp_path):
    corpus = tmp_path / "names.txt"
    corpus.write_text("Ann\nBo\nAnn\n", encoding="utf-8")
    assert training_records(corpus, "lines") == {"Ann", "Bo"}
    with pytest.raises(ChargenError) as err:
        training_records(tmp_path / "gone.txt", "lines")
    assert err.value.message == f"--unique reads the training corpus, which is gone: {tmp_path / 'gone.txt'}"
    with pytest.raises(ChargenError) as err:
        training_records("", "lines")
    assert err.value.message.startswith("this model does not name the corpus it was trained on")


# -- scoring a text ------------------------------------------------------------------------------
def test_score_text_is_the_carried_loss_and_the_windows_of_the_text(trained_run):
    model, vocab, ckpt = load_model(trained_run.best)
    ids = vocab.encode(trained_run.corpus.read_text(encoding="utf-8"))
    scored = score_text(model, ckpt, [trained_run.corpus], window=32)
    carried, windows = evaluate_carried(model, ids, CPU), evaluate_windows(model, ids, CPU, window=32)
    assert isinstance(scored, TextScore) and scored.scored == carried and scored.windows == windows
    assert scored.unknown == [] and scored.to_dict() == {
        "text": str(Sources((str(trained_run.corpus),))), "split": "all", "chars": carried.chars,
        "loss": round(carried.loss, 4), "bpc": round(carried.bpc, 4),
        "loss_window32": round(windows.loss, 4), "bpc_window32": round(windows.bpc, 4)}
    val = score_text(model, ckpt, [trained_run.corpus], split="val")
    assert val.scored.loss == pytest.approx(ckpt.best_val_loss, abs=1e-5) and val.scored.chars < carried.chars
    assert "loss_window32" not in val.to_dict()


@pytest.mark.parametrize("kwargs, message", [({"split": "test"}, "unknown split 'test'"),
                                             ({"window": -1}, "window must be 0 (off) or positive, got -1")])
def test_score_text_refuses_a_bad_split_or_window(trained_run, kwargs, message):
    model, _, ckpt = load_model(trained_run.best)
    with pytest.raises(ChargenError) as err:
        score_text(model, ckpt, [trained_run.corpus], **kwargs)
    assert err.value.message == message
