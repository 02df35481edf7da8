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
    """A tiny CPU TrainConfig: a step limit only, no patience, evaluation every 10 steps, one thread
    (an adaptive count follows how a busy test machine times the steps, and a change of count mid-run
    may change the last bits of a sum: tests that compare runs bit for bit need a fixed one)."""
    base = dict(batch_size=4, seq_len=16, lr=1e-2, warmup_steps=3, max_steps=30, max_time=0.0, patience=0,
                eval_every=10, save_every=10, val_frac=0.1, seed=1, device="cpu", threads=1)
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
    from chargen.training.trainer import Trainer

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


def plain_ids(model, vocab, cfg) -> list[list[int]]:
    """The sampling loop written the plain way, as the oracle for chargen's rounds: the whole model
    once per character, filter_logits, one noise draw per step; ids per step, each a list of N."""
    import math

    from chargen.sample.draw import GumbelNoise, filter_logits
    from chargen.sample.sampler import start_ids

    n = cfg.num_samples
    noise = GumbelNoise(torch.Generator().manual_seed(cfg.seed), n, len(vocab), skip=vocab.unk_id)
    with torch.no_grad():
        logits, hidden = model(start_ids(vocab, cfg.prime)[None])  # (1, P, V)

        def expand(h):
            return h.expand(-1, n, -1).contiguous()  # (L, 1, H) -> (L, N, H)

        hidden = tuple(map(expand, hidden)) if isinstance(hidden, tuple) else expand(hidden)
        last = logits[:, -1].expand(n, -1)  # (N, V)
        out = []
        for _ in range(cfg.length):
            if vocab.unk_id is not None:
                last = last.index_fill(1, torch.tensor([vocab.unk_id]), -math.inf)
            if cfg.temperature == 0:
                nxt = last.argmax(-1)  # (N,)
            else:
                nxt = (filter_logits(last, cfg.temperature, cfg.top_k, cfg.top_p) + noise.next()).argmax(-1)
            out.append(nxt.tolist())
            logits, hidden = model(nxt[:, None], hidden)  # (N, 1, V)
            last = logits[:, -1]
    return out
