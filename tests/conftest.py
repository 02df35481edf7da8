"""Shared fixtures: a tiny repetitive corpus, tiny configs, and one tiny trained run per session.

Everything is sized for a 2-core CPU: hidden sizes of 6 to 24, a few dozen steps,
texts of a couple of thousand characters, every run folder under tmp_path.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from chargen import ModelConfig, TrainConfig, TrainResult, Vocab, train

@pytest.fixture(autouse=True, scope="session")
def corpus_cache(tmp_path_factory) -> Path:
    """Prepared corpora go to a folder of this test session, never to the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("chargen-cache")
    old = os.environ.get("CHARGEN_CACHE")
    os.environ["CHARGEN_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("CHARGEN_CACHE", None)
    else:
        os.environ["CHARGEN_CACHE"] = old


# Tiny models run faster on one thread than on two busy ones, and the results do not depend on it.
torch.set_num_threads(1)

POEM = ("Twinkle, twinkle, little star,\nHow I wonder what you are!\n"
        "Up above the world so high,\nLike a diamond in the sky.\n")
POEM_TEXT = POEM * 20  # 2260 characters, 30 distinct


def model_config(**overrides) -> ModelConfig:
    """A tiny ModelConfig; sizes differ from each other and from the batch and window sizes."""
    base = dict(cell="lstm", num_layers=2, hidden_size=16, embedding_dim=8, dropout=0.0)
    return ModelConfig(**{**base, **overrides})


def train_config(**overrides) -> TrainConfig:
    """A tiny CPU TrainConfig: a step limit only, no patience, evaluation every 10 steps."""
    base = dict(batch_size=4, seq_len=16, lr=1e-2, warmup_steps=3, max_steps=30, max_time=0.0, patience=0,
                eval_every=10, save_every=10, val_frac=0.1, seed=1, device="cpu")
    return TrainConfig(**{**base, **overrides})


@pytest.fixture
def make_model_config():
    return model_config


@pytest.fixture
def make_train_config():
    return train_config


@pytest.fixture(scope="session")
def poem_text() -> str:
    return POEM_TEXT


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    """The repeated poem as a UTF-8 file of its own in this test's tmp_path."""
    path = tmp_path / "poem.txt"
    path.write_text(POEM_TEXT, encoding="utf-8", newline="")
    return path


@dataclass(frozen=True)
class TrainedRun:
    corpus: Path
    run_dir: Path
    result: TrainResult
    vocab: Vocab

    @property
    def best(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def last(self) -> Path:
        return self.run_dir / "last.pt"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> TrainedRun:
    """One tiny 2-layer LSTM trained for 60 steps; read its files, never write into its folder."""
    root = tmp_path_factory.mktemp("trained")
    corpus = root / "poem.txt"
    corpus.write_text(POEM_TEXT, encoding="utf-8", newline="")
    result = train(corpus, model_config(dropout=0.1), train_config(max_steps=60, eval_every=20, save_every=20,
                                                                   lr=3e-2, seed=7),
                   out=root / "run", progress=False)
    assert result.steps == 60 and math.isfinite(result.best_val_loss)
    return TrainedRun(corpus, root / "run", result, Vocab.from_text(POEM_TEXT))


def interrupt_at(monkeypatch, step: int) -> None:
    """Simulate Ctrl-C at the start of training step `step`."""
    from chargen.trainer import Trainer

    original = Trainer.train_step

    def train_step(self):
        if self.state.step == step:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", train_step)


@pytest.fixture(name="interrupt_at")
def interrupt_at_fixture():
    """The function interrupt_at(monkeypatch, step), for tests in any file."""
    return interrupt_at
