"""Default settings by device: the values `chargen train` uses for what the user leaves out.

On a CPU the recipe is ModelConfig's and TrainConfig's own defaults (GRU 2x256, batch
32 x 64, chosen on a 2-core CPU). A CUDA GPU has the throughput for a much larger,
more regularised model: an LSTM 3x1024 with dropout 0.5 and weight decay 0.1 at batch
128 x 128 (chosen on an H100; benchmarks/README.md has the runs). Other devices get
the CPU recipe.
"""
from __future__ import annotations

from dataclasses import fields

import torch

from .config import TrainConfig
from .model import ModelConfig

GPU = {"cell": "lstm", "num_layers": 3, "hidden_size": 1024, "embedding_dim": 256, "dropout": 0.5,
       "batch_size": 128, "seq_len": 128, "lr": 2e-3, "weight_decay": 0.1}
_MODEL_FIELDS = {f.name for f in fields(ModelConfig)}


def recipe(device: torch.device) -> dict:
    """The settings that differ from the dataclass defaults on this device."""
    return dict(GPU) if device.type == "cuda" else {}


def default_configs(target: torch.device, **given) -> tuple[ModelConfig, TrainConfig]:
    """A ModelConfig and a TrainConfig from `given` (None = not given) and the recipe of the
    `target` device for the rest."""
    values = {**recipe(target), **{k: v for k, v in given.items() if v is not None}}
    model = ModelConfig(**{k: v for k, v in values.items() if k in _MODEL_FIELDS})
    train = TrainConfig(**{k: v for k, v in values.items() if k not in _MODEL_FIELDS})
    return model, train


def default_help(name: str) -> str:
    """'(default: x on a CPU, y on a GPU)' for a setting the recipes choose, for the CLI's help."""
    cpu = {f.name: f.default for f in fields(ModelConfig) + fields(TrainConfig)}[name]
    return f"(default: {cpu} on a CPU, {GPU[name]} on a GPU)" if name in GPU else f"(default: {cpu})"
