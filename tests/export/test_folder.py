"""The safetensors model folder: what `export(..., "safetensors")` writes, and reading it back
(chargen.load_model on a folder) without running code."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from chargen import ChargenError, SampleConfig, load_model, sample_texts
from chargen.export import export
from chargen.export.card import CARD_SAMPLE
from chargen.modelfile.folder import CONFIG, FOLDER_FORMAT, WEIGHTS


@pytest.fixture(scope="module")
def folder(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "poem-lstm"
    result = export(trained_run.best, "safetensors", out)
    assert result.path == out and result.files == ("README.md", CONFIG, WEIGHTS)
    assert result.bytes == sum(p.stat().st_size for p in out.iterdir())
    return out


def test_a_folder_loads_with_identical_logits_vocab_and_figures(trained_run, folder):
    """Guards against an export that loses or reorders a weight, the vocabulary or the unknown symbol."""
    model, vocab, ckpt = load_model(trained_run.best)
    again, vocab2, ckpt2 = load_model(folder)
    assert vocab2 == vocab and vocab2.unk == vocab.unk and ckpt2.model_config == ckpt.model_config
    ids = vocab.encode("How I wonder")[None]  # (1, 12)
    with torch.no_grad():
        assert torch.equal(again(ids)[0], model(ids)[0])
    assert ckpt2.step == ckpt.step == 60 and ckpt2.corpus == "poem.txt"
    assert ckpt2.corpus_chars == ckpt.corpus_chars > 2000
    assert ckpt2.best_val_loss == pytest.approx(ckpt.best_val_loss, abs=1e-4)
    assert ckpt2.train_config == ckpt.train_config and ckpt2.optimizer is None
    assert ckpt2.run_state == replace(ckpt.run_state, corpus="")
    assert ckpt.run_state.corpus.endswith("poem.txt")  # the trainer's own path stays on the trainer's machine


def test_the_folder_has_the_hub_layout_and_a_card_with_real_figures(trained_run, folder):
    """Guards against a folder a model hub or another program cannot read: weights only in
    model.safetensors (names of the state_dict, format pt), the model's fields at the top of
    config.json, and a card whose figures, command and sample are this model's."""
    model, vocab, ckpt = load_model(trained_run.best)
    with safe_open(str(folder / WEIGHTS), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict()) and f.metadata() == {"format": "pt"}
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    assert config["library_name"] == "chargen" and config["chargen_folder_format"] == FOLDER_FORMAT
    assert {k: config[k] for k in ckpt.model_config.to_dict()} == ckpt.model_config.to_dict()
    assert config["vocab"] == list(vocab.chars) and config["unk"] == "\ufffd"
    assert config["training"]["corpus"] == "poem.txt" and config["training"]["step"] == 60
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: chargen\n")
    assert f"{ckpt.best_val_loss:.4f} nats/char" in card and f"{model.num_parameters():,} parameters" in card
    assert "chargen train poem.txt --cell lstm --num-layers 2 --hidden-size 16 --embedding-dim 8" in card
    assert "--max-steps 60" in card and "--seed 7" in card
    assert sample_texts(model, vocab, CARD_SAMPLE, "cpu")[0] in card


def test_the_same_seed_gives_the_same_text_from_the_folder_and_the_checkpoint(trained_run, folder):
    cfg = SampleConfig(length=80, temperature=0.9, seed=5, prime="Up ")
    a = sample_texts(*load_model(trained_run.best)[:2], cfg, "cpu")
    b = sample_texts(*load_model(folder)[:2], cfg, "cpu")
    assert a == b and len(a[0]) == 83


def test_reading_a_folder_never_unpickles(folder, tmp_path, monkeypatch):
    """Guards against a folder reader that falls back to torch.load (pickle can run code): a folder
    loads with torch.load disabled, and a pickle posing as model.safetensors is refused."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a model folder")
    monkeypatch.setattr(torch, "load", refuse)
    load_model(folder)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / CONFIG).write_bytes((folder / CONFIG).read_bytes())
    monkeypatch.undo()
    torch.save({"embedding.weight": torch.zeros(3, 2)}, fake / WEIGHTS)
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(ChargenError, match="not a valid safetensors file"):
        load_model(fake)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / CONFIG).write_text("{not json"), "not readable JSON"),
    (lambda d: (d / WEIGHTS).unlink(), "not a chargen model folder"),
    (lambda d: (d / CONFIG).write_text(json.dumps({"library_name": "other"})), "does not describe a chargen model"),
    (lambda d: _edit(d, chargen_folder_format=FOLDER_FORMAT + 1), "newer than this chargen"),
    (lambda d: _edit(d, hidden_size=17), "do not fit its configuration"),
    (lambda d: _edit(d, vocab=["a", "b", "\ufffd"]), "inconsistent"),
    (lambda d: (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:100]), "not a valid safetensors file"),
])
def test_a_damaged_folder_is_one_clear_error(folder, tmp_path, damage, message):
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in folder.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    damage(copy)
    with pytest.raises(ChargenError, match=message):
        load_model(copy)


def _edit(folder: Path, **changes) -> None:
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    (folder / CONFIG).write_text(json.dumps({**config, **changes}), encoding="utf-8")


def test_a_checkpoint_without_training_records_still_gets_a_card(tmp_path, make_model_config):
    """Guards against a card that assumes a trained run: a weights-only file (no step, no loss,
    no corpus, no settings) exports with 'not recorded' / 'not measured' and no command."""
    from chargen import CharRNN, Checkpoint, Vocab
    vocab = Vocab.from_text("abc ")
    config = make_model_config(cell="gru", vocab_size=len(vocab))
    Checkpoint(config, vocab, CharRNN(config).state_dict()).save(tmp_path / "w.pt")
    export(tmp_path / "w.pt", "safetensors", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "| corpus | not recorded |" in card and "| validation loss | not measured |" in card
    assert "## Trained with" not in card and not math.isfinite(load_model(tmp_path / "out")[2].best_val_loss)


def test_corpus_names_the_corpus_an_older_checkpoint_did_not_record(trained_run, tmp_path):
    export(trained_run.best, "safetensors", tmp_path / "named", corpus="poems-2026.txt")
    card = (tmp_path / "named" / "README.md").read_text(encoding="utf-8")
    assert "| corpus | poems-2026.txt" in card and "chargen sample named --temp 0.8" in card
    assert load_model(tmp_path / "named")[2].corpus == "poems-2026.txt"


def test_a_format_1_folder_keeps_its_run_state_apart_from_its_settings(folder, tmp_path):
    """Guards against stranding the folders exported before the run's history had a place of its own:
    their flat train_config (patterns and budget extension among the settings) reads into both."""
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    config = json.loads((old / CONFIG).read_text(encoding="utf-8"))
    training = config["training"]
    flat = {**training.pop("train_config"), **training.pop("run_state"), "include": ["*.txt"], "extended_at_step": 7}
    _edit(old, chargen_folder_format=1, training={**training, "train_config": flat})
    _, _, ckpt = load_model(old)
    _, _, new = load_model(folder)
    assert ckpt.train_config == new.train_config
    assert (ckpt.run_state.include, ckpt.run_state.extended_at_step, ckpt.run_state.corpus) == (("*.txt",), 7, "")
