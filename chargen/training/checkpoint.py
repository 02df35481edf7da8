"""The checkpoint schema (`Checkpoint`) and its file: writing it atomically, reading it
safely, validating it and migrating older formats. The only code that knows the keys.

On disk a checkpoint is a dict of plain types and tensors only (format version, both
configs, vocabulary, weights, optimizer and RNG state, position), so it loads with
`weights_only=True` and a file from a stranger can never run code.
"""
from __future__ import annotations

import math
import os
import pickle
import re
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ..data import Vocab
from ..errors import ChargenError
from ..model import CharRNN, ModelConfig
from .config import TrainConfig

FORMAT_VERSION = 1
TEMP_SUFFIX = ".tmp"  # a file being written is ".<name>.<random><TEMP_SUFFIX>" beside its target
REQUIRED = ("format_version", "model_config", "vocab", "model")
OPTIONAL = ("train_config", "optimizer", "rng", "scaler", "step", "epoch", "window", "elapsed", "best_val_loss",
            "evals_since_best", "hidden")


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
                           f"understands ({FORMAT_VERSION})", "update chargen to a newer version")
    return state


def _migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint dict of any readable format version as the current format's.

    Format 1 files written before a field existed lack it: no unknown symbol, no
    training state (a file holding weights alone), no scaler, no carried state.
    """
    return {"unk": None, "train_config": None, **state, "format_version": FORMAT_VERSION}


@dataclass
class Checkpoint:
    """Everything a run writes: the one place that knows a checkpoint's keys.

    A file holding only a model (`train_config` None) can be sampled but not resumed;
    `optimizer`, `rng`, `scaler` are the state_dicts their owners gave; `hidden` is the
    carried state's tensors on the CPU (one, or an LSTM's two), None for zeros.
    """

    model_config: ModelConfig
    vocab: Vocab
    model: dict[str, torch.Tensor]
    train_config: TrainConfig | None = None
    optimizer: dict | None = None
    rng: dict | None = None
    scaler: dict | None = None
    step: int = 0
    epoch: int = 0
    window: int = 0
    elapsed: float = 0.0
    best_val_loss: float = math.inf
    evals_since_best: int = 0
    hidden: list[torch.Tensor] | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain types and tensors only, as written to disk."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(format_version=FORMAT_VERSION, model_config=self.model_config.to_dict(),
                 train_config=None if self.train_config is None else self.train_config.to_dict(),
                 vocab=list(self.vocab.chars), unk=self.vocab.unk)
        return d

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> Checkpoint:
        """Validate and migrate a dict as read from disk; ChargenError names what is damaged."""
        state = _migrate(_validate(state, Path(path)))
        try:
            vocab = Vocab(tuple(state["vocab"]), state["unk"])
            model_config = ModelConfig(**state["model_config"])
            train_config = None if state["train_config"] is None else TrainConfig(**state["train_config"])
        except (TypeError, ValueError, ChargenError) as e:
            raise ChargenError(f"{path} has a damaged configuration or vocabulary ({e})",
                               "use another checkpoint") from None
        if model_config.vocab_size != len(vocab):
            raise ChargenError(f"{path} is inconsistent: its model expects {model_config.vocab_size} characters "
                               f"but its vocabulary has {len(vocab)}", "use another checkpoint")
        rest = {k: state[k] for k in OPTIONAL if k in state and k != "train_config"}
        return cls(model_config, vocab, state["model"], train_config, **rest)

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(self.to_dict(), path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Checkpoint:
        return cls.from_dict(read_checkpoint(path), path)

    def build_model(self, path: str | os.PathLike = "checkpoint") -> CharRNN:
        """The model with these weights, on the CPU in eval mode; ChargenError if they do not fit."""
        config, weights = self.model_config, self.model
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
        return model.eval()


def load_model(path: str | os.PathLike) -> tuple[CharRNN, Vocab, Checkpoint]:
    """Read a checkpoint file and rebuild its model: (model on the CPU in eval mode, vocab, checkpoint)."""
    ckpt = Checkpoint.read(path)
    return ckpt.build_model(path), ckpt.vocab, ckpt
