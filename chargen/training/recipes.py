"""Default settings by device: the values `chargen train` uses for what the user leaves out.

On a CPU the recipe is ModelConfig's and TrainConfig's own defaults (GRU 2x256, batch
32 x 64, chosen on a 2-core CPU), but for the dropout, which depends on how many passes
over the training text the budget allows (`planned_passes`): none for a few passes,
where every update counts, and ModelConfig's 0.1 for more, where the model would
otherwise overfit. A CUDA GPU has the throughput for a much larger,
more regularised model: an LSTM 3x1024 with dropout 0.5 and weight decay 0.1 at batch
128 x 128 (chosen on an H100; benchmarks/README.md has the runs). Other devices get
the CPU recipe.
"""
from __future__ import annotations

import math
from dataclasses import fields

import torch

from ..model.charrnn import ModelConfig
from .config import TrainConfig

GPU = {"cell": "lstm", "num_layers": 3, "hidden_size": 1024, "embedding_dim": 256, "dropout": 0.5,
       "batch_size": 128, "seq_len": 128, "lr": 2e-3, "weight_decay": 0.1}
_MODEL_FIELDS = {f.name for f in fields(ModelConfig)}

# The CPU recipe's dropout, measured on a 2-core CPU (tinyshakespeare, 2026-11-25;
# benchmarks/README.md): with a 140 s budget (about 4 planned passes) no dropout reached
# 1.462 nats/char against 1.492 with 0.1 (means of 3 and 4 runs); with 600 s (about 18)
# 0.1 reached 1.440 against 1.503. With step budgets (2026-11-26, one run each): at 6
# passes 0 reached 1.450 against 1.461, at 9 passes 1.463 against 1.449; they cross near 7.
SHORT_PASSES = 6.0
CPU_CHARS_PER_S = 30_000  # the CPU recipe's training speed on that machine (28,000-34,000 measured)


def recipe(device: torch.device) -> dict:
    """The settings that differ from the dataclass defaults on this device."""
    return dict(GPU) if device.type == "cuda" else {}


def planned_passes(train: TrainConfig, corpus_chars: int) -> float:
    """Passes over the training part of a `corpus_chars` corpus that the budget allows: its
    step limit's characters, or its time limit at the CPU recipe's speed, whichever is fewer."""
    budgets = [train.max_time * CPU_CHARS_PER_S] if train.max_time else []
    budgets += [train.max_steps * train.batch_size * train.seq_len] if train.max_steps else []
    return min(budgets, default=math.inf) / max(1.0, (1 - train.val_frac) * corpus_chars)


def default_configs(target: torch.device, corpus_chars: int | None = None, **given) -> tuple[ModelConfig, TrainConfig]:
    """A ModelConfig and a TrainConfig from `given` (None = not given) and the recipe of the
    `target` device for the rest. With `corpus_chars` (the corpus's size), a dropout neither
    given nor set by the recipe is chosen from the planned passes: 0 for at most SHORT_PASSES."""
    values = {**recipe(target), **{k: v for k, v in given.items() if v is not None}}
    train = TrainConfig(**{k: v for k, v in values.items() if k not in _MODEL_FIELDS})
    if "dropout" not in values and corpus_chars is not None and planned_passes(train, corpus_chars) <= SHORT_PASSES:
        values["dropout"] = 0.0
    model = ModelConfig(**{k: v for k, v in values.items() if k in _MODEL_FIELDS})
    return model, train


def default_help(name: str) -> str:
    """'(default: x on a CPU, y on a GPU)' for a setting the recipes choose, for the CLI's help."""
    cpu = {f.name: f.default for f in fields(ModelConfig) + fields(TrainConfig)}[name]
    return f"(default: {cpu} on a CPU, {GPU[name]} on a GPU)" if name in GPU else f"(default: {cpu})"
