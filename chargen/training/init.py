"""Starting a run from a trained model (`--init`): finding the model, fitting its vocabulary to a
corpus, the weights the run starts from, and the lineage a fine-tuned model carries. The base
model is only read here, never written."""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data import Vocab
from ..errors import ChargenError
from ..model import ModelConfig
from ..modelfile.checkpoint import Checkpoint
from ..modelfile.load import read_model

# Models shipped in the repository's checkpoints/ folder, by the name `--init` takes.
SHIPPED = {"base": "base-gru/best.pt", "shakespeare": "shakespeare-gru/best.pt"}
ARCHITECTURE = ("cell", "num_layers", "hidden_size", "embedding_dim")  # what a fine-tune takes from its base


@dataclass(frozen=True)
class Start:
    """What a run started from a model begins with: the model's shape (its vocabulary fitted to the
    corpus), that vocabulary, the weights in its numbering, and the lineage entry naming the base."""

    model_config: ModelConfig
    vocab: Vocab
    weights: dict[str, torch.Tensor]
    base: dict  # {"name", "sha256", "corpus", "credits"}: see lineage_entry
    new_chars: tuple[str, ...]  # the corpus's characters the base did not know


def shipped_dir() -> Path:
    """The checkpoints/ folder of the repository this package was installed from."""
    return Path(__file__).resolve().parents[2] / "checkpoints"


def resolve_init(spec: str | os.PathLike) -> Path:
    """The file or folder `spec` names: a path to a checkpoint or a model folder, or the name of a
    shipped model (SHIPPED). ChargenError, naming the shipped models, when it names nothing."""
    path = Path(spec)
    if path.exists():
        return path
    if str(spec) in SHIPPED:
        shipped = shipped_dir() / SHIPPED[str(spec)]
        if shipped.exists():
            return shipped
        raise ChargenError(f"the shipped model {spec!r} is not in {shipped_dir()}",
                           "run chargen from a clone of its repository, or pass the model's path")
    names = ", ".join(SHIPPED)
    raise ChargenError(f"--init {spec}: no such file, folder or shipped model",
                       f"pass a best.pt, an exported model folder, or one of: {names}")


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """A content hash of a model's weights: each tensor's name, dtype, shape and bytes, in name order.
    The same weights give the same hash whether read from a checkpoint or a model folder."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def lineage_entry(path: Path, ckpt: Checkpoint, name: str | None = None) -> dict:
    """How a fine-tuned model names its base: the name it was asked for (a shipped name, or the
    path's folder/file name), the hash of its weights, its corpus, and its credits (the sources and
    licences of what it learned, carried from its own lineage when it is itself a fine-tune)."""
    credits = ckpt.credits or "; ".join(e.get("credits", "") for e in ckpt.lineage if e.get("credits"))
    label = name or (path.parent.name + "/" + path.name if path.is_file() else path.name)
    return {"name": label, "sha256": weights_sha256(ckpt.model), "corpus": ckpt.corpus, "credits": credits}


def check_architecture(base: ModelConfig, given: dict) -> None:
    """ChargenError (bad usage) for a shape flag that contradicts the base's: the shape comes from it."""
    for field in ARCHITECTURE:
        value = given.get(field)
        if value is not None and value != getattr(base, field):
            flag = "--" + field.replace("_", "-")
            raise ChargenError(f"{flag} {value} contradicts the --init model, whose {field} is "
                               f"{getattr(base, field)}", f"leave out {flag}: a fine-tune keeps its base's shape")


def fitted_vocab(base: Vocab, corpus: Vocab) -> tuple[Vocab, tuple[str, ...]]:
    """The base's vocabulary with the corpus's characters it lacks added (in sorted order), and those.
    A bytes vocabulary already holds everything; a chars base and a bytes corpus (or the reverse)
    cannot be fitted. ChargenError when the new characters outnumber the base's own: the corpus is
    then mostly in a script the base never read, and the base would help little."""
    if base.kind != corpus.kind:
        raise ChargenError(f"the --init model reads {base.kind} and this run would read {corpus.kind}",
                           f"leave out --vocab (the run reads {base.kind} like its base), or start from scratch")
    if base.kind == "bytes":
        return base, ()
    new = tuple(c for c in corpus.chars if c not in set(base.chars) and c != corpus.unk)
    if len(new) > len(base):
        raise ChargenError(f"the corpus has {len(new):,} characters the --init model never saw, more than the "
                           f"{len(base):,} it knows", "start from scratch (leave out --init), or from a bytes model")
    return Vocab(tuple(sorted(set(base.chars) | set(new))), base.unk), new


def read_base(spec: str | os.PathLike) -> tuple[Path, Checkpoint]:
    """The model `spec` names (resolve_init) and its path, read as every model is (read_model)."""
    path = resolve_init(spec)
    return path, read_model(path)


def start_from(path: Path, ckpt: Checkpoint, corpus_vocab: Vocab, corpus_counts: dict[str, int] | None = None,
               name: str | None = None) -> Start:
    """The start of a run on a corpus of `corpus_vocab` from the model `ckpt` read from `path`.

    Characters the base knows keep their rows (renumbered where new characters sort before them).
    Each new character gets rows that start harmless and learn quickly:
    - embedding: the mean of the base's rows, a neutral input ("some character") that moves the
      state as little as any known character would;
    - head: a zero weight row, so its logit is its bias alone and cannot fire on any context
      before training gives it one; the bias puts it at about its frequency in the corpus
      (`corpus_counts`), on the base's own scale (new_char_bias): not the -inf of a character
      never to be written, which AdamW would need thousands of steps to lift, and not a guess
      high enough to steal probability from the characters the base predicts well.
    """
    vocab, new = fitted_vocab(ckpt.vocab, corpus_vocab)
    weights = {k: v.detach().clone() for k, v in ckpt.model.items()}
    if new:
        old_index = {c: i for i, c in enumerate(ckpt.vocab.chars)}
        rows = torch.tensor([old_index.get(c, -1) for c in vocab.chars])  # (V_new,) -1: a new character
        is_new = rows < 0
        bias = weights["head.bias"]
        fill = {"embedding.weight": weights["embedding.weight"].mean(0),
                "head.weight": torch.zeros_like(weights["head.weight"][0]),
                "head.bias": new_char_bias(ckpt.vocab, bias, corpus_counts or {}, new)}
        for key, value in fill.items():
            old = weights[key]
            grown = old[rows.clamp(min=0)].clone()  # (V_new, ...)
            grown[is_new] = value.to(old.dtype)
            weights[key] = grown
    config = replace(ckpt.model_config, vocab_size=len(vocab))
    # A shipped model goes by its name; any other by its folder and file name, never a local path.
    return Start(config, vocab, weights, lineage_entry(Path(path), ckpt, name if name in SHIPPED else None), new)


def new_char_bias(base: Vocab, bias: torch.Tensor, counts: dict[str, int], new: tuple[str, ...]) -> torch.Tensor:
    """(len(new),): head biases for new characters, at the log of their corpus frequency on the base's
    scale. The scale is the median of (bias - log frequency) over the characters both know; with no
    counts to go by, the base's median bias minus log 10 (a rare character)."""
    total = sum(counts.values())
    shared = [(bias[i].item(), counts[c]) for i, c in enumerate(base.chars) if counts.get(c)]
    if not total or not shared:
        return torch.full((len(new),), bias.median().item() - math.log(10))
    offset = float(np.median([b - math.log(n / total) for b, n in shared]))
    return torch.tensor([offset + math.log(max(counts.get(c, 0), 1) / total) for c in new])
