"""A model folder: `model.safetensors` (the weights alone) and `config.json` (the model's shape,
its vocabulary and what is known of its training), the layout the Hugging Face Hub's PyTorch
integration uses. Reading one never runs code: safetensors holds raw tensors, config.json plain
JSON. Writing the folder as a whole (temporary folder, model card) is export's job.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from ..data import Vocab
from ..errors import ChargenError
from ..model import ModelConfig
from .checkpoint import Checkpoint, check_lineage, check_version
from .config import TrainConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FOLDER_FORMAT = 1  # config.json's "chargen_folder_format"; a newer one is refused with a hint to update
MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig))


def is_model_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding config.json (what read_model_folder then checks)."""
    return Path(path).is_dir() and (Path(path) / CONFIG).is_file()


def folder_config(ckpt: Checkpoint) -> dict[str, Any]:
    """config.json's contents: the model config's fields at the top level (as the Hub's integration
    writes a model's constructor arguments), then the vocabulary and a training summary."""
    best = ckpt.best_val_loss
    training = {
        "corpus": ckpt.corpus or None, "corpus_chars": ckpt.corpus_chars or None, "step": ckpt.step,
        "seconds": round(ckpt.elapsed, 1),
        "best_val_loss": round(best, 4) if math.isfinite(best) else None,
        "best_val_bpc": round(best / math.log(2), 4) if math.isfinite(best) else None,
        # The corpus's path on the trainer's machine is not shared: the name above says what it was.
        "train_config": None if ckpt.train_config is None else {**ckpt.train_config.to_dict(), "corpus": ""},
    }
    return {**ckpt.model_config.to_dict(), "library_name": "chargen", "chargen_folder_format": FOLDER_FORMAT,
            "vocab_kind": ckpt.vocab.kind, "vocab": list(ckpt.vocab.chars), "unk": ckpt.vocab.unk,
            "fine_tuned_from": ckpt.lineage, "credits": ckpt.credits, "training": training}


def write_model_files(ckpt: Checkpoint, folder: Path) -> None:
    """Write model.safetensors and config.json into the existing folder `folder`."""
    from safetensors.torch import save_file

    weights = {name: t.detach().to("cpu").contiguous() for name, t in ckpt.model.items()}
    save_file(weights, str(folder / WEIGHTS), metadata={"format": "pt"})
    text = json.dumps(folder_config(ckpt), indent=2, ensure_ascii=False)
    (folder / CONFIG).write_text(text + "\n", encoding="utf-8")


def read_model_folder(folder: str | os.PathLike) -> Checkpoint:
    """The model kept in a folder written by write_model_files, as a Checkpoint without training
    state (it samples and evaluates; it does not resume). ChargenError names a missing file,
    damaged JSON or tensors, a newer format, or a configuration its weights do not fit."""
    folder = Path(folder)
    config = _read_config(folder)
    weights = _read_weights(folder / WEIGHTS)
    try:
        model_config = ModelConfig(**{k: config[k] for k in MODEL_FIELDS if k in config})
        vocab = Vocab(tuple(config["vocab"]), config.get("unk"), config.get("vocab_kind", "chars"))
        training = config.get("training") or {}
        stored = training.get("train_config")
        train_config = None if stored is None else TrainConfig(**stored)
        best = training.get("best_val_loss")
        ckpt = Checkpoint(model_config, vocab, weights, train_config, step=int(training.get("step") or 0),
                          elapsed=float(training.get("seconds") or 0.0),
                          best_val_loss=math.inf if best is None else float(best),
                          corpus=training.get("corpus") or "", corpus_chars=int(training.get("corpus_chars") or 0))
        ckpt.lineage, ckpt.credits = check_lineage(config.get("fine_tuned_from"), config.get("credits"), folder)
    except (TypeError, ValueError, KeyError, AttributeError, ChargenError) as e:
        raise ChargenError(f"{folder / CONFIG} has a damaged configuration or vocabulary ({e})",
                           "export the model again with: chargen export CHECKPOINT --format safetensors") from None
    if model_config.vocab_size != len(vocab):
        raise ChargenError(f"{folder} is inconsistent: its model expects {model_config.vocab_size} characters "
                           f"but its vocabulary has {len(vocab)}", "export the model again")
    return ckpt


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        raise ChargenError(f"{folder} is a folder but not a chargen model folder (it needs {CONFIG} and {WEIGHTS})",
                           "pass a .pt checkpoint or a folder written by chargen export --format safetensors")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ChargenError(f"{path} is not readable JSON ({e})", "export the model again") from None
    if not isinstance(config, dict) or config.get("library_name") != "chargen":
        raise ChargenError(f"{path} does not describe a chargen model",
                           "pass a folder written by chargen export --format safetensors")
    check_version(config.get("chargen_folder_format"), FOLDER_FORMAT, path, "folder format", "export the model again")
    return config


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ChargenError(f"{path} is not a valid safetensors file ({str(e).splitlines()[0][:160]})",
                           "export the model again") from None
