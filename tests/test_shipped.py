"""The shipped model and corpora: they load, sample and evaluate as checkpoints/README.md says."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import ModelConfig, SampleConfig, TrainConfig, load_model, read_text, sample_texts, train
from chargen.cli import app

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "shakespeare-gru" / "best.pt"
SHAKESPEARE = ROOT / "corpora" / "shakespeare.txt"
KOREAN = ROOT / "corpora" / "korean_constitution.txt"


def test_shipped_checkpoint_is_plain_and_small():
    """The shipped model must load with plain torch.load(weights_only=True) and stay under 20 MB."""
    assert SHIPPED.stat().st_size < 20 * 1024 * 1024
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert state["format_version"] == 1
    assert state["model_config"]["vocab_size"] == len(state["vocab"]) == len(set(read_text(SHAKESPEARE)))


def test_shipped_model_writes_shakespeare_words():
    """A sample from the shipped model must be mostly real words of the corpus, not character soup."""
    model, vocab, _ = load_model(SHIPPED)
    text = sample_texts(model, vocab, SampleConfig(length=1500, temperature=0.8, seed=1))[0]
    words = set(re.findall(r"[a-z]+", read_text(SHAKESPEARE).lower()))
    found = re.findall(r"[a-z]+", text.lower())
    assert len(found) > 150
    assert sum(w in words for w in found) / len(found) > 0.85


@pytest.mark.slow
def test_shipped_validation_loss_is_reproduced():
    """`chargen eval --split val` must reproduce the validation loss recorded in the shipped checkpoint."""
    state = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    result = CliRunner().invoke(app, ["eval", str(SHIPPED), str(SHAKESPEARE), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loss"] == pytest.approx(state["best_val_loss"], abs=2e-4)


def test_sample_from_fresh_clone_uses_shipped_model(tmp_path, monkeypatch):
    """`chargen sample --temp 0.8` in the project root, with no training, must find the shipped model."""
    monkeypatch.chdir(ROOT)
    if len(list((ROOT / "checkpoints").glob("**/best.pt"))) > 1:
        pytest.skip("user runs under checkpoints/ are newer than the shipped model")
    result = CliRunner().invoke(app, ["sample", "--temp", "0.8", "--length", "200", "--seed", "3"])
    assert result.exit_code == 0
    assert "checkpoints/shakespeare-gru/best.pt" in result.stderr
    assert len(result.stdout) == 201


def test_korean_corpus_trains_and_samples_with_korean_prime(tmp_path):
    """A Hangul corpus with \\r\\n line ends must train end to end and sample from a Korean prime."""
    text = read_text(KOREAN)
    assert "\r\n" in text and "대한민국" in text
    result = train(KOREAN, ModelConfig(cell="gru", num_layers=1, hidden_size=24, embedding_dim=12),
                   TrainConfig(batch_size=8, seq_len=32, max_steps=40, max_time=0, eval_every=20, device="cpu",
                               patience=0), out=tmp_path / "ko", progress=False)
    assert result.best_val_loss < torch.log(torch.tensor(float(len(set(text))))).item()
    model, vocab, _ = load_model(tmp_path / "ko" / "best.pt")
    assert "\r" in vocab.chars and "헌" in vocab.chars
    out = sample_texts(model, vocab, SampleConfig(length=50, prime="대한민국", seed=2))[0]
    assert out.startswith("대한민국") and len(out) == 54
    assert set(out) <= set(vocab.chars)
