"""Training settings and the learning-rate schedule: pure values, no tensors, no I/O."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..device import PRECISIONS
from ..errors import ChargenError


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are the CPU recipe measured in the README.

    `max_steps=0` and `max_time=0` mean no limit (at least one must be set); the
    learning-rate schedule runs over `max_steps` when it is set, else over `max_time`.
    """

    batch_size: int = 32
    seq_len: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    min_lr_frac: float = 0.1
    grad_clip: float = 1.0
    max_steps: int = 0
    max_time: float = 600.0
    patience: int = 10
    eval_every: int = 1000
    save_every: int = 1000
    val_frac: float = 0.1
    val_chars: int = 500_000  # cap on the validation tail, so evaluating a huge corpus stays quick; 0 = none
    min_char_count: int = 1  # rarer characters share one unknown symbol
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            ("batch_size", 1, 1 << 20), ("seq_len", 1, 1 << 20), ("warmup_steps", 0, 1 << 40),
            ("max_steps", 0, 1 << 40), ("patience", 0, 1 << 40), ("eval_every", 1, 1 << 40),
            ("save_every", 1, 1 << 40), ("seed", 0, 2**63 - 1),
            ("val_chars", 0, 1 << 50), ("min_char_count", 1, 1 << 50),
        ]
        for name, low, high in checks:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ChargenError(f"{name} must be an integer from {low} to {high}, got {value!r}",
                                   f"fix --{name.replace('_', '-')}")
        finite = [("lr", 0.0, 10.0, False), ("weight_decay", 0.0, 10.0, True), ("min_lr_frac", 0.0, 1.0, True),
                  ("grad_clip", 0.0, 1e6, False), ("max_time", 0.0, 1e9, True), ("val_frac", 0.0, 0.9, True)]
        for name, low, high, low_ok in finite:
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and math.isfinite(value) and value <= high
            ok = ok and (value >= low if low_ok else value > low)
            if not ok:
                bound = "[" if low_ok else "("
                raise ChargenError(f"{name} must be in {bound}{low}, {high}], got {value!r}",
                                   f"fix --{name.replace('_', '-')}")
        if self.precision not in PRECISIONS:
            raise ChargenError(f"unknown precision {self.precision!r}", "use --precision auto, fp32, bf16 or fp16")
        if self.max_steps == 0 and self.max_time == 0:
            raise ChargenError("training needs a limit", "set --max-steps or --max-time")

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(config: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warmup over `warmup_steps`, then cosine decay to `min_lr_frac * lr` at the end of the budget."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.max_steps:
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    else:
        progress = elapsed / config.max_time
    progress = min(max(progress, 0.0), 1.0)
    floor = config.min_lr_frac
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
