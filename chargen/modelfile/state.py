"""A run's history that is not a setting: where a resume gave it a new budget, and the corpus as
it was read. The checkpoint keeps it beside the settings (checkpoint.py); files written before it
had a place of its own kept it inside the flat training settings (`split_flat`)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ChargenError


@dataclass(frozen=True)
class RunState:
    """`extended_*`: where the last budget extension began (step 0 = never extended), its second of
    training and the learning rate there (training/schedule.py decays from it). `corpus`: the
    absolute paths the run read, joined by spaces ("" before it has); `include`/`exclude`: the
    patterns it chose its files with (a resume given none reads the run's own)."""

    extended_at_step: int = 0
    extended_at_time: float = 0.0
    extended_from_lr: float = 0.0
    corpus: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.extended_at_step, int) or not 0 <= self.extended_at_step < 1 << 40:
            raise ChargenError(f"extended_at_step must be a step, got {self.extended_at_step!r}")
        for name, high in (("extended_at_time", 1e9), ("extended_from_lr", 10.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0.0 <= value <= high:
                raise ChargenError(f"{name} must be in [0.0, {high}], got {value!r}")
        if not isinstance(self.corpus, str):
            raise ChargenError(f"corpus must be a path, got {self.corpus!r}")
        for name in ("include", "exclude"):  # lists when read back from JSON
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
                raise ChargenError(f"{name} must be a list of patterns, got {value!r}")
            object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "include": list(self.include), "exclude": list(self.exclude)}


STATE_FIELDS = tuple(f.name for f in fields(RunState))


def split_flat(train_config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A training config dict of a format 3 file (or older), which kept the run state among the
    settings, as (settings, run state)."""
    settings = {k: v for k, v in train_config.items() if k not in STATE_FIELDS}
    return settings, {k: v for k, v in train_config.items() if k in STATE_FIELDS}
