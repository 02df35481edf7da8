"""Models of the other kinds, trained once per module that imports these fixtures: on records
(--records lines) and on bytes (--vocab bytes). Shared by the kinds, card and ONNX loop tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import POEM_TEXT, model_config, train_config

from chargen import train

NAMES = ["anna", "bob", "carla", "dave", "emma", "frank", "gina", "hal", "ivy", "jo"] * 20


@pytest.fixture(scope="module", name="records_run")
def records_run_fixture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    train(root / "names.txt", model_config(cell="gru", hidden_size=12, embedding_dim=6),
          train_config(records="lines", max_steps=20, eval_every=10, save_every=10), out=root / "run", progress=False)
    return root / "run" / "best.pt"


@pytest.fixture(scope="module", name="bytes_run")
def bytes_run_fixture(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bytes")
    (root / "poem.txt").write_bytes(POEM_TEXT.replace("star", "\u00e9toile").encode("latin-1"))
    train(root / "poem.txt", model_config(cell="rnn", num_layers=1, hidden_size=10, embedding_dim=4),
          train_config(vocab="bytes", max_steps=10), out=root / "run", progress=False)
    return root / "run" / "best.pt"


@pytest.fixture(scope="module", name="names_run")
def names_run_fixture(tmp_path_factory) -> Path:
    """A records model trained long enough that its greedy record is not empty."""
    root = tmp_path_factory.mktemp("names")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    train(root / "names.txt", model_config(cell="gru", num_layers=1, hidden_size=14, embedding_dim=5),
          train_config(records="lines", max_steps=150, lr=3e-2, eval_every=150, save_every=150), out=root / "run",
          progress=False)
    return root / "run" / "best.pt"
