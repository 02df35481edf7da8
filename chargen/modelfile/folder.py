"""A model folder: `model.safetensors` (the weights alone) and `config.json` (the model's shape,
its vocabulary and what is known of its training), the layout the Hugging Face Hub's PyTorch
integration uses. Reading one never runs code: safetensors holds raw tensors, config.json plain
JSON. Writing the folder as a whole (temporary folder, model card) is export's job.
"""
from __future__ import annotations

import json
import math
import os
import reprlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from ..data import Vocab
from ..errors import ChargenError
from ..fileio import finite_or_none
from ..model import ModelConfig
from .checkpoint import Checkpoint, check_lineage, check_version
from .state import RunState, split_flat
from ..config import TrainConfig

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
# config.json's "chargen_folder_format"; a newer one is refused with a hint to update. 2: the run's history
# (training.run_state) apart from its settings (format 1 kept it inside training.train_config).
FOLDER_FORMAT = 2
MODEL_FIELDS = tuple(f.name for f in fields(ModelConfig))
# What an export writes, with room to spare; a tampered config.json beyond these is refused before it is used.
MAX_CONFIG_BYTES = 64 << 20  # a vocabulary of every Unicode character is about 10 MB of JSON
MAX_DEPTH = 4  # config -> training -> train_config -> include -> a pattern
MAX_TEXT = 4096  # characters in one string (a name, a setting)
MAX_ITEMS = 0x110001  # entries in one list or object: the vocabulary holds at most every code point
NUMBER = ((int, float), "a non-negative number")
TRAINING: dict[str, tuple[Any, str]] = {  # the type(s) isinstance takes, and in words
            "corpus": (str, "a string"), "corpus_chars": (int, "a non-negative integer"),
            "step": (int, "a non-negative integer"), "seconds": NUMBER, "best_val_loss": NUMBER, "best_val_bpc": NUMBER,
            "train_config": (dict, "an object"), "run_state": (dict, "an object")}
# (config.json's training summary: each may also be null)


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
        "best_val_loss": finite_or_none(best, 4),
        "best_val_bpc": finite_or_none(best / math.log(2), 4),
        "train_config": None if ckpt.train_config is None else ckpt.train_config.to_dict(),
        # The corpus's path on the trainer's machine is not shared: the name above says what it was.
        "run_state": {**ckpt.run_state.to_dict(), "corpus": ""},
    }
    return {**ckpt.model_config.to_dict(), "library_name": "chargen", "chargen_folder_format": FOLDER_FORMAT,
            "vocab_kind": ckpt.vocab.kind, "vocab": list(ckpt.vocab.chars), "unk": ckpt.vocab.unk,
            "fine_tuned_from": ckpt.lineage, "credits": ckpt.credits, "training": training}


def write_model_files(ckpt: Checkpoint, folder: Path) -> None:
    """Write model.safetensors and config.json into the existing folder `folder`."""
    from safetensors.torch import save

    weights = {name: t.detach().to("cpu").contiguous() for name, t in ckpt.model.items()}
    # Serialised here and written by Python, not by save_file: the file gets the umask's mode like the
    # others (save_file makes it 0600), and a full disk is an OSError like any other write's.
    (folder / WEIGHTS).write_bytes(save(weights, metadata={"format": "pt"}))
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
        settings, state = split_flat(stored) if stored is not None else (None, {})  # older folders: one dict
        train_config = None if settings is None else TrainConfig(**settings)
        run_state = RunState(**{**state, **(training.get("run_state") or {})})
        best = training.get("best_val_loss")
        ckpt = Checkpoint(model_config, vocab, weights, train_config, step=int(training.get("step") or 0),
                          elapsed=float(training.get("seconds") or 0.0),
                          best_val_loss=math.inf if best is None else float(best),
                          corpus=training.get("corpus") or "", corpus_chars=int(training.get("corpus_chars") or 0),
                          run_state=run_state)
        ckpt.lineage, ckpt.credits = check_lineage(config.get("fine_tuned_from"), config.get("credits"), folder)
    except (TypeError, ValueError, KeyError, AttributeError, ChargenError) as e:
        raise ChargenError(f"{folder / CONFIG} has a damaged configuration or vocabulary ({str(e)[:160]})",
                           "export the model again with: chargen export CHECKPOINT --format safetensors") from None
    if model_config.vocab_size != len(vocab):
        raise ChargenError(f"{folder} is inconsistent: its model expects {model_config.vocab_size} characters "
                           f"but its vocabulary has {len(vocab)}", "export the model again")
    return ckpt


def is_chargen_config(path: Path) -> bool:
    """Whether `path` is a config.json that chargen wrote (readable JSON naming chargen as its library)."""
    try:
        return _load_json(path).get("library_name") == "chargen"
    except ChargenError:
        return False


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file() or not (folder / WEIGHTS).is_file():
        run = next((folder / n for n in ("best.pt", "last.pt") if (folder / n).is_file()), None)  # a run folder
        raise ChargenError(f"{folder} is a folder but not a chargen model folder (it needs {CONFIG} and {WEIGHTS})",
                           f"pass its checkpoint: {run}" if run else
                           "pass a .pt checkpoint or a folder written by chargen export --format safetensors")
    config = _load_json(path)
    if config.get("library_name") != "chargen":
        raise ChargenError(f"{path} does not describe a chargen model",
                           "pass a folder written by chargen export --format safetensors")
    check_version(config.get("chargen_folder_format"), FOLDER_FORMAT, path, "folder format", "export the model again")
    _check_plain(config, path, "config")
    _check_types(config, path)
    return config


def _load_json(path: Path) -> dict[str, Any]:
    """config.json as a dict; ChargenError for an unreadable, oversized, deeply nested or non-object file."""
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ChargenError(f"{path} is larger than any config.json chargen writes ({MAX_CONFIG_BYTES >> 20} MB)",
                               "export the model again")
        config = json.loads(path.read_text(encoding="utf-8"))
    # ValueError: bad JSON, or an integer of thousands of digits; RecursionError: arrays nested thousands deep.
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ChargenError(f"{path} is not readable JSON ({str(e)[:160]})", "export the model again") from None
    if not isinstance(config, dict):
        raise ChargenError(f"{path} does not describe a chargen model",
                           "pass a folder written by chargen export --format safetensors")
    return config


def _damaged(path: Path, where: str, problem: str) -> ChargenError:
    return ChargenError(f"{path} has a damaged configuration: {where} {problem}",
                        "export the model again with: chargen export CHECKPOINT --format safetensors")


def _check_plain(value: Any, path: Path, where: str, depth: int = 0) -> None:
    """ChargenError for a value no export writes: nested deeper than MAX_DEPTH, a string longer than MAX_TEXT,
    more than MAX_ITEMS entries, a number that is not finite (JSON's NaN, 1e400) or beyond 64 bits."""
    if isinstance(value, (dict, list)):
        if depth >= MAX_DEPTH or len(value) > MAX_ITEMS:
            raise _damaged(path, where, "is nested too deep" if depth >= MAX_DEPTH else "has too many entries")
        for key, item in (value.items() if isinstance(value, dict) else enumerate(value)):
            if isinstance(key, str) and len(key) > MAX_TEXT:
                raise _damaged(path, where, "has a key that is too long")
            if isinstance(item, (dict, list, str, float)) or (isinstance(item, int) and abs(item) >= 2**63):
                _check_plain(item, path, f"{where}.{key}" if isinstance(value, dict) else f"{where}[{key}]",
                             depth + 1)
    elif isinstance(value, str) and len(value) > MAX_TEXT:
        raise _damaged(path, where, f"is a string of {len(value):,} characters")
    elif isinstance(value, float) and not math.isfinite(value):
        raise _damaged(path, where, f"is not a finite number ({value!r})")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise _damaged(path, where, "is a number too large")


def _check_types(config: dict[str, Any], path: Path) -> None:
    """ChargenError naming the first value of the vocabulary or the training summary of the wrong type or sign
    (the model's fields are ModelConfig's to check)."""
    vocab, training = config.get("vocab"), config.get("training")
    if not isinstance(vocab, list) or not all(type(c) is str for c in vocab):
        raise _damaged(path, "vocab", f"is {reprlib.repr(vocab)}, not a list of characters")
    for name in ("unk", "vocab_kind"):
        if not isinstance(config.get(name, ""), (str, type(None))):
            raise _damaged(path, name, f"is {reprlib.repr(config[name])}, not a string")
    if not isinstance(training, (dict, type(None))):
        raise _damaged(path, "training", f"is {reprlib.repr(training)}, not an object")
    for name, (kind, what) in TRAINING.items():
        value = (training or {}).get(name)
        number = what.startswith("a non-negative")
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool) or (number and value < 0)):
            raise _damaged(path, f"training.{name}", f"is {reprlib.repr(value)}, not {what}")


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ChargenError(f"{path} is not a valid safetensors file ({str(e).splitlines()[0][:160]})",
                           "export the model again") from None
