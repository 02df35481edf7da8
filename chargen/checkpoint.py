"""One self-contained checkpoint file: writing it atomically, reading it safely.

A checkpoint is a dict of plain types and tensors only (format version, both
configs, vocabulary, weights, optimizer and RNG state, position), so it loads with
`weights_only=True` and a file from a stranger can never run code. What the
fields mean for training is train.py's business, not this module's.
"""
from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .corpus import Vocab
from .errors import ChargenError
from .model import CharRNN, ModelConfig

FORMAT_VERSION = 1
TEMP_SUFFIX = ".tmp"  # a file being written is ".<name>.<random><TEMP_SUFFIX>" beside its target
REQUIRED = ("format_version", "model_config", "vocab", "model")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` so that a crash at any moment leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced,
    and only then renamed over `path` (a rename within one file system is atomic).
    Raises ChargenError if the folder is unwritable or the disk is full; the
    previous file at `path` is then untouched.
    """
    path = Path(path)
    state = {"format_version": FORMAT_VERSION, **state}
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; a checkpoint is an ordinary file others may read
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        raise ChargenError(f"could not write checkpoint {path}: {e.strerror or e}",
                           "free some disk space or choose a writable --out folder") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass


def remove_stale_temp_files(folder: Path, names: tuple[str, ...] = ("best.pt", "last.pt")) -> list[Path]:
    """Delete the half-written temp files that a process killed inside save_checkpoint left in
    `folder`; call it only while no other process can be saving there (holding the run lock)."""
    stale = [p for name in names for p in Path(folder).glob(f".{name}.*{TEMP_SUFFIX}")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a checkpoint dict from `path` onto the CPU.

    Loading to the CPU first means a model trained on a GPU opens on any machine;
    the caller moves it where it wants. Raises ChargenError with a specific message
    for a missing, empty, truncated, foreign, unsafe or newer-format file.
    """
    path = Path(path)
    if not path.is_file():
        raise ChargenError(f"checkpoint not found: {path}", "train one first with: chargen train CORPUS")
    if path.stat().st_size == 0:
        raise ChargenError(f"checkpoint {path} is empty (0 bytes)", "delete it and use another checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise ChargenError(f"{path} is not a valid chargen checkpoint: it is not a PyTorch file or "
                               "its contents are damaged", "use another checkpoint, e.g. last.pt") from None
        raise ChargenError(f"{path} is not a valid chargen checkpoint: it asks to load {found.group(1)}, "
                           "which could run code, so it was refused", "only load checkpoints written by chargen") from None
    except Exception as e:  # noqa: BLE001 - untrusted bytes can fail inside torch in many ways
        raise ChargenError(f"{path} is not a valid chargen checkpoint: it is truncated, damaged or not a "
                           f"PyTorch file ({type(e).__name__}: {_first_line(e)})",
                           "use another checkpoint, e.g. last.pt") from None
    return _validate(state, path)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _validate(state: Any, path: Path) -> dict[str, Any]:
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise ChargenError(f"{path} is a PyTorch file but not a chargen checkpoint",
                           "pass a best.pt or last.pt written by chargen train")
    version = state["format_version"]
    if not isinstance(version, int) or version < 1:
        raise ChargenError(f"{path} has an invalid format version {version!r}", "use another checkpoint")
    if version > FORMAT_VERSION:
        raise ChargenError(f"{path} has format version {version}, newer than this chargen "
                           f"understands ({FORMAT_VERSION})", "upgrade chargen: pip install -U chargen")
    return state


def model_from_checkpoint(state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> tuple[CharRNN, Vocab]:
    """Rebuild the model (on the CPU, in eval mode) and its vocabulary from a checkpoint dict."""
    try:
        vocab = Vocab(tuple(state["vocab"]), state.get("unk"))
        config = ModelConfig(**state["model_config"])
    except (TypeError, ValueError, ChargenError) as e:
        raise ChargenError(f"{path} has a damaged configuration or vocabulary ({e})",
                           "use another checkpoint") from None
    if config.vocab_size != len(vocab):
        raise ChargenError(f"{path} is inconsistent: its model expects {config.vocab_size} characters "
                           f"but its vocabulary has {len(vocab)}", "use another checkpoint")
    weights = state["model"]
    # A tiny file may claim a huge model: count its tensors (one embedding, two of the head, four per
    # layer) before building anything, then compare shapes on the meta device (no memory).
    fits = isinstance(weights, dict) and len(weights) == 3 + 4 * config.num_layers
    if fits:
        with torch.device("meta"):
            expected = {k: v.shape for k, v in CharRNN(config).state_dict().items()}
        fits = {k: getattr(v, "shape", None) for k, v in weights.items()} == expected
    if not fits:
        raise ChargenError(f"{path} has weights that do not fit its configuration", "use another checkpoint")
    model = CharRNN(config)
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as e:
        raise ChargenError(f"{path} has weights that do not fit its configuration ({_first_line(e)})",
                           "use another checkpoint") from None
    return model.eval(), vocab


def load_model(path: str | os.PathLike) -> tuple[CharRNN, Vocab, dict[str, Any]]:
    """Read a checkpoint file and rebuild its model; returns (model, vocab, checkpoint dict)."""
    state = read_checkpoint(path)
    model, vocab = model_from_checkpoint(state, path)
    return model, vocab, state
