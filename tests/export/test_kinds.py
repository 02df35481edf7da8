"""Exporting the other kinds of model: one trained on records (--records) and one on bytes
(--vocab bytes). Their folder, card and ONNX metadata must say what they are, or the model is
read as a plain character stream elsewhere."""
from __future__ import annotations

import json

import pytest
from kind_runs import bytes_run_fixture, records_run_fixture  # noqa: F401  (fixtures)

from chargen import RECORD_END, SampleConfig, load_model, sample_records
from chargen.export import export


def test_a_records_folder_keeps_its_records_and_its_card_shows_records(records_run, tmp_path):
    """Guards against a card whose command trains a stream model and whose sample runs the
    records together, and against a folder whose model no longer samples whole records."""
    export(records_run, "safetensors", tmp_path / "names")
    card = (tmp_path / "names" / "README.md").read_text(encoding="utf-8")
    assert "chargen train names.txt --cell gru" in card and "--records lines" in card
    sample = card.split("```text\n")[1].split("\n```")[0]
    assert RECORD_END not in sample and len(sample.split("\n")) == 10
    model, vocab, ckpt = load_model(tmp_path / "names")
    assert ckpt.train_config.records == "lines" and ckpt.run_state.corpus == ""  # no local path shared
    again = load_model(records_run)
    cfg = SampleConfig(num_samples=4, length=20, temperature=0.9, seed=3)
    assert sample_records(model, vocab, cfg).records == sample_records(*again[:2], cfg).records


def test_a_records_models_stop_string_is_looked_for_after_the_prime(records_run):
    """Guards against --stop cutting into the prime: 'a' stops each record after the prime 'a'."""
    model, vocab, _ = load_model(records_run)
    drawn = sample_records(model, vocab, SampleConfig(num_samples=6, length=20, prime="a", stop="a", seed=4,
                                                      temperature=1.0))
    assert all(r.startswith("a") for r in drawn.records) and any(len(r) > 1 for r in drawn.records)
    assert all(r.count("a") <= 2 and (r.count("a") == 1 or r.endswith("a")) for r in drawn.records)


def test_a_bytes_folder_and_card_say_bytes_and_hold_only_text(bytes_run, tmp_path):
    export(bytes_run, "safetensors", tmp_path / "poem")
    config = json.loads((tmp_path / "poem" / "config.json").read_text(encoding="utf-8"))
    card = (tmp_path / "poem" / "README.md").read_text(encoding="utf-8")
    assert config["vocab_kind"] == "bytes" and len(config["vocab"]) == 256 and config["unk"] is None
    assert "--vocab bytes" in card and " bytes)" in card
    assert not any(ord(c) < 32 and c not in "\n\t" for c in card)  # control bytes escaped as \xHH
    model, vocab, _ = load_model(tmp_path / "poem")
    assert vocab.kind == "bytes" and vocab == load_model(bytes_run)[1]


@pytest.mark.slow  # two ONNX exports: about 20 s on a busy 2-core CPU
def test_onnx_metadata_says_the_vocabulary_kind_and_the_record_end(records_run, bytes_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    for run, kind, records in ((records_run, "chars", True), (bytes_run, "bytes", False)):
        out = tmp_path / f"{kind}.onnx"
        export(run, "onnx", out)
        meta = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
        vocab = load_model(run)[1]
        assert json.loads(meta["chargen.vocab_kind"]) == kind
        end = json.loads(meta["chargen.record_end"])
        assert end == (vocab.chars.index(RECORD_END) if records else None)

