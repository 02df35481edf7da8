"""Opening a trained model from either form it is kept in: a checkpoint file (best.pt, last.pt)
or a model folder (model.safetensors + config.json, as `chargen export --format safetensors`
writes). Neither way runs code from the file."""
from __future__ import annotations

import os
from pathlib import Path

from ..data import Vocab
from ..errors import ChargenError
from ..model import CharRNN
from .checkpoint import Checkpoint
from .folder import CONFIG, WEIGHTS, is_model_folder, read_model_folder


def read_model(path: str | os.PathLike) -> Checkpoint:
    """The Checkpoint in a .pt file or a model folder; ChargenError for anything else (a file of a model
    folder: pass the folder)."""
    path = Path(path)
    if path.is_dir():
        return read_model_folder(path)
    if path.name in (WEIGHTS, CONFIG, "README.md") and is_model_folder(path.parent):
        raise ChargenError(f"{path} is one file of the model folder {path.parent}",
                           f"pass the folder itself: {path.parent}")
    return Checkpoint.read(path)


def load_model(path: str | os.PathLike) -> tuple[CharRNN, Vocab, Checkpoint]:
    """Read a checkpoint file or model folder and rebuild its model: (model on the CPU in eval
    mode, vocab, checkpoint)."""
    ckpt = read_model(path)
    return ckpt.build_model(path), ckpt.vocab, ckpt
