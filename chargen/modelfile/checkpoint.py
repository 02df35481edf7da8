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
import reprlib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, cast

import torch

from ..data import Vocab
from ..errors import ChargenError, write_error
from ..fileio import TEMP_SUFFIX, atomic_write
from ..model import CharRNN, ModelConfig, weight_shapes
from ..config import TrainConfig
from ..interrupts import interrupts_held
from .state import RunState, split_flat

# 2: a chars vocabulary always holds the unknown symbol U+FFFD (format 1 files gain it on reading);
# 3: the vocabulary's kind, "chars" or "bytes" (`vocab_kind`; older files are "chars");
# 4: the run's history (`run_state`) apart from its settings (older files kept it inside `train_config`)
FORMAT_VERSION = 4
REQUIRED = ("format_version", "model_config", "vocab", "model")
OPTIONAL = ("train_config", "optimizer", "rng", "scaler", "step", "epoch", "window", "elapsed", "best_val_loss",
            "evals_since_best", "hidden", "corpus", "corpus_chars", "lineage", "credits", "run_state")
PER_CHARACTER = ("embedding.weight", "head.weight", "head.bias")  # the weights with one row per character
# The run's figures and the type each must have: checked on reading, so a card, a table or a resume never
# formats a tampered value. best_val_loss may be infinite (never measured); the others are finite and non-negative
# (integers within 64 bits).
SCALARS: dict[str, type | tuple[type, ...]] = {
           "step": int, "epoch": int, "window": int, "evals_since_best": int, "corpus_chars": int,
           "elapsed": (int, float), "best_val_loss": (int, float), "corpus": str}
# A format 1 model's new unknown symbol gets the smallest bias minus this: e^-10 of the rarest character's
# weight, so the known characters' probabilities (and a validation loss) move by less than 1e-4 of themselves.
UNKNOWN_BIAS_MARGIN = 10.0


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write `state` to `path` so that a crash at any moment leaves either the old file or the new one.

    The bytes go to a temporary file in the same folder, are flushed and fsynced,
    and only then renamed over `path` (a rename within one file system is atomic).
    Ctrl-C during the write is held until it is complete (interrupts_held).
    Raises ChargenError if the folder is unwritable or gone or the disk is full; the
    previous file at `path` is then untouched.
    """
    path = Path(path)
    state = {"format_version": FORMAT_VERSION, **state}
    with interrupts_held():
        try:
            with atomic_write(path, "wb", fsync=True) as f:
                _save(state, f)
        except OSError as e:
            raise write_error("checkpoint", path, e) from None


class _Remembering:
    """A file that keeps the OSError of its failed write, which torch.save turns into a RuntimeError."""

    error: OSError | None

    def __init__(self, f) -> None:
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _save(state: dict[str, Any], f) -> None:
    """torch.save into `f`; a full disk raises the OSError it met, not torch's RuntimeError."""
    out = _Remembering(f)
    try:
        torch.save(state, cast(BinaryIO, out))  # it writes and flushes, all torch.save calls
    except RuntimeError:
        if out.error is None:
            raise
        raise out.error from None


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
        raise ChargenError(f"checkpoint {path} is empty (0 bytes)", _other_checkpoint(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if found is None:
            raise ChargenError(f"{path} is not a valid chargen checkpoint: it is not a PyTorch file or "
                               "its contents are damaged", _other_checkpoint(path)) from None
        raise ChargenError(f"{path} is not a valid chargen checkpoint: it asks to load {found.group(1)}, "
                           "which could run code, so it was refused",
                           "only load checkpoints written by chargen") from None
    except Exception as e:  # noqa: BLE001 - untrusted bytes can fail inside torch in many ways
        raise ChargenError(f"{path} is not a valid chargen checkpoint: it is truncated, damaged or not a "
                           f"PyTorch file ({type(e).__name__}: {_first_line(e)})",
                           _other_checkpoint(path)) from None
    return _validate(state, path)


def _other_checkpoint(path: Path) -> str:
    """The hint for a damaged file: the run's other checkpoint beside it, when there is one."""
    other = {"best.pt": "last.pt", "last.pt": "best.pt"}.get(path.name)
    if other is not None and (path.parent / other).is_file():
        return f"use {path.parent / other} instead (to --resume from it, move this file aside)"
    return "use another checkpoint"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


def _validate(state: Any, path: Path) -> dict[str, Any]:
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise ChargenError(f"{path} is a PyTorch file but not a chargen checkpoint",
                           "pass a best.pt or last.pt written by chargen train")
    check_version(state["format_version"], FORMAT_VERSION, path, "format version", "use another checkpoint")
    return state


def _check_scalars(state: dict[str, Any], path: Path) -> None:
    """ChargenError naming the first of the run's figures (SCALARS) of the wrong type or sign."""
    for name, kind in SCALARS.items():
        value = state.get(name, 0 if kind is not str else "")
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if ok and kind is not str and name != "best_val_loss":
            ok = 0 <= value < 2**63 if isinstance(value, int) else value >= 0 and math.isfinite(value)
        if not ok:
            raise ChargenError(f"{path} has a damaged {name}: {reprlib.repr(value)}", "use another checkpoint")


def check_version(version: Any, newest: int, path: Path, name: str, hint: str) -> None:
    """ChargenError unless `version` is an integer from 1 to `newest` (a newer one: update chargen)."""
    if not isinstance(version, int) or version < 1:
        raise ChargenError(f"{path} has an invalid {name} {version!r}", hint)
    if version > newest:
        raise ChargenError(f"{path} has {name} {version}, newer than this chargen understands ({newest})",
                           "update chargen to a newer version")


def _migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint dict of any readable format version as the current format's.

    Files written before a field existed lack it: format 1 the unknown symbol, the
    training state (a file holding weights alone), the scaler and the carried state;
    formats 1 and 2 the vocabulary's kind, which was always "chars"; formats 1 to 3 kept the run
    state inside the training config, whence it is taken apart. A chars vocabulary without the
    unknown symbol gains it later, in _add_unknown.
    """
    state = {"unk": None, "train_config": None, "vocab_kind": "chars", **state, "format_version": FORMAT_VERSION}
    if "run_state" not in state and isinstance(state["train_config"], dict):
        state["train_config"], state["run_state"] = split_flat(state["train_config"])
    return state


def _add_unknown(state: dict[str, Any], vocab: Vocab, config: ModelConfig) -> tuple[Vocab, ModelConfig, dict]:
    """Give a format 1 model the unknown symbol: its vocabulary, config and state with U+FFFD added
    (a new dict; `state` is untouched).

    U+FFFD goes in at its sorted position i (after every character below U+FFFD, so for
    most vocabularies at the end) and ids from i on shift up by one. Row i is inserted into
    the embedding as the mean of its rows (a neutral input: "some character"), into the
    head as zero weights and a bias UNKNOWN_BIAS_MARGIN below the smallest (finite; far
    less likely than the rarest character, as a model that never saw the symbol would
    learn), so every known character's logit is exactly what it was and its probability
    all but so; the sampler never draws the symbol. AdamW's moments get zero rows there.
    Weights of the wrong shape are left as they are for build_model to report.
    """
    new = vocab.with_unknown()
    if len(new) == len(vocab):  # U+FFFD was already a character: it becomes the symbol, nothing moves
        return new, config, state
    i, v = cast(int, new.unk_id), len(vocab)  # the vocabulary just made holds the symbol
    model = dict(state["model"]) if isinstance(state["model"], dict) else state["model"]
    if isinstance(model, dict):
        rows = {"embedding.weight": lambda t: t.mean(0), "head.weight": lambda t: torch.zeros_like(t[0]),
                "head.bias": lambda t: t.min() - UNKNOWN_BIAS_MARGIN}
        for name, row in rows.items():
            t = model.get(name)
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() >= 1 and t.shape[0] == v:
                model[name] = _insert_row(t, i, row(t))
    state = {**state, "model": model, "optimizer": _optimizer_with_row(state.get("optimizer"), state["model"], i, v)}
    return new, replace(config, vocab_size=len(new)), state


def _optimizer_with_row(optimizer: Any, model: Any, i: int, v: int) -> Any:
    """An optimizer state_dict with a zero row at i in every per-character moment (exp_avg, exp_avg_sq).

    Its parameters are numbered in the model's order, which is the state_dict's order."""
    try:
        names = list(model)
        flat = [p for group in optimizer["param_groups"] for p in group["params"]]
        per_param = dict(optimizer["state"])
        if len(flat) != len(names):
            return optimizer
        for name in PER_CHARACTER:
            pid = flat[names.index(name)] if name in names else None
            if isinstance(per_param.get(pid), dict):
                per_param[pid] = {k: _insert_row(t, i, torch.zeros_like(t[0]))
                                  if isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == v else t
                                  for k, t in per_param[pid].items()}
    except (TypeError, KeyError, ValueError):
        return optimizer  # no optimizer (a weights-only file), or a damaged one that restore reports
    return {**optimizer, "state": per_param}


def _insert_row(t: torch.Tensor, i: int, row: torch.Tensor) -> torch.Tensor:
    """`t` (V, ...) with `row` (...) inserted before row i: (V + 1, ...)."""
    return torch.cat([t[:i], row.to(t.dtype).expand_as(t[:1]), t[i:]])


LINEAGE_KEYS = ("name", "sha256", "corpus", "credits")
MAX_LINEAGE = 64  # ancestors kept; a longer chain is a damaged or hostile file
MAX_TEXT = 4096  # characters in one lineage value or the credits


def check_lineage(lineage: Any, credits: Any, path: str | os.PathLike) -> tuple[list[dict], str]:
    """A model's lineage (a list of {name, sha256, corpus, credits} strings, base first) and credits
    as read from a file ([] and "" when absent); ChargenError for anything else."""
    lineage = [] if lineage is None else lineage
    credits = "" if credits is None else credits
    ok = isinstance(lineage, list) and len(lineage) <= MAX_LINEAGE and isinstance(credits, str)
    ok = ok and len(credits) <= MAX_TEXT * 4 and all(
        isinstance(e, dict) and set(e) <= set(LINEAGE_KEYS)
        and all(isinstance(v, str) and len(v) <= MAX_TEXT for v in e.values()) for e in lineage)
    if not ok:
        raise ChargenError(f"{path} has a damaged lineage (what the model was fine-tuned from)",
                           "use another checkpoint")
    return [{k: e.get(k, "") for k in LINEAGE_KEYS} for e in lineage], credits


@dataclass
class Checkpoint:
    """Everything a run writes: the one place that knows a checkpoint's keys.

    A file holding only a model (`train_config` None) can be sampled but not resumed;
    `optimizer`, `rng`, `scaler` are the state_dicts their owners gave; `hidden` is the
    carried state's tensors on the CPU (one, or an LSTM's two), None for zeros. Older files
    lack the later fields (`corpus`, `corpus_chars`) and read with their defaults.
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
    corpus: str = ""  # the corpus's file name, for a model card ("" in files written before it was kept)
    corpus_chars: int = 0  # the corpus's length in characters (0: not recorded)
    # The models this one was fine-tuned from, its base first (training/init.py's lineage_entry):
    # [] for a model trained from scratch.
    lineage: list[dict] = field(default_factory=list)
    credits: str = ""  # the sources (and licences) of what it learned, for a model card; "" = its corpus
    run_state: RunState = field(default_factory=RunState)  # the run's history that is no setting (state.py)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain types and tensors only, as written to disk."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(format_version=FORMAT_VERSION, model_config=self.model_config.to_dict(),
                 train_config=None if self.train_config is None else self.train_config.to_dict(),
                 vocab=list(self.vocab.chars), unk=self.vocab.unk, vocab_kind=self.vocab.kind,
                 run_state=self.run_state.to_dict())
        return d

    @classmethod
    def from_dict(cls, state: dict[str, Any], path: str | os.PathLike = "checkpoint") -> Checkpoint:
        """Validate and migrate a dict as read from disk; ChargenError names what is damaged."""
        state = _migrate(_validate(state, Path(path)))
        try:
            vocab = Vocab(tuple(state["vocab"]), state["unk"], state["vocab_kind"])
            model_config = ModelConfig(**state["model_config"])
            train_config = None if state["train_config"] is None else TrainConfig(**state["train_config"])
            run_state = RunState(**(state.get("run_state") or {}))
        except (TypeError, ValueError, ArithmeticError, RecursionError, ChargenError) as e:
            raise ChargenError(f"{path} has a damaged configuration or vocabulary ({_first_line(e)})",
                               "use another checkpoint") from None
        if model_config.vocab_size != len(vocab):
            raise ChargenError(f"{path} is inconsistent: its model expects {model_config.vocab_size} characters "
                               f"but its vocabulary has {len(vocab)}", "use another checkpoint")
        _check_scalars(state, Path(path))
        if vocab.unk is None and vocab.kind == "chars":  # a bytes vocabulary knows every byte: it needs none
            vocab, model_config, state = _add_unknown(state, vocab, model_config)
        rest = {k: state[k] for k in OPTIONAL if k in state and k not in ("train_config", "run_state")}
        rest["lineage"], rest["credits"] = check_lineage(state.get("lineage"), state.get("credits"), path)
        return cls(model_config, vocab, state["model"], train_config, **rest, run_state=run_state)

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(self.to_dict(), path)

    @classmethod
    def read(cls, path: str | os.PathLike) -> Checkpoint:
        return cls.from_dict(read_checkpoint(path), path)

    def build_model(self, path: str | os.PathLike = "checkpoint") -> CharRNN:
        """The model with these weights, on the CPU in eval mode; ChargenError if they do not fit."""
        config, weights = self.model_config, self.model
        # A tiny file may claim a huge model: count its tensors (one embedding, two of the head, four per
        # layer), then compare their shapes with the configuration's, before building anything.
        fits = (isinstance(weights, dict) and len(weights) == 3 + 4 * config.num_layers and
                {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()} == weight_shapes(config))
        if not fits:
            raise ChargenError(f"{path} has weights that do not fit its configuration", "use another checkpoint")
        # Checked here, where every model is read (checkpoint or folder): a NaN would load silently and then
        # sample only one character over and over, and make every loss NaN.
        broken = next((k for k, v in weights.items() if not bool(torch.isfinite(v).all())), None)
        if broken is not None:
            raise ChargenError(f"{path} has weights that are not finite numbers (NaN or infinity in {broken})",
                               "use another checkpoint, e.g. an earlier one of the run (a run whose loss became "
                               "NaN: train again with a lower --lr)")
        model = CharRNN(config)
        try:
            model.load_state_dict(weights)
        except (RuntimeError, KeyError, TypeError) as e:
            raise ChargenError(f"{path} has weights that do not fit its configuration ({_first_line(e)})",
                               "use another checkpoint") from None
        return model.eval()

