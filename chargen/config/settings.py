"""The settings of a training run, each declared once: its default, its help and its group.

Split by meaning: OptimConfig (how the weights learn), ScheduleConfig (the learning rate's course
and the run's budget), DataConfig (what is read and how it is split), RunConfig (where and how the
run goes and what it shows). The model's shape is model/'s ModelConfig. TrainConfig joins the four
for the trainer. A run's history (a budget extension, the corpus as read) is not a setting: it
is the checkpoint's (modelfile/state.py). The CLI's `chargen train` options are made from these.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..data.records import check_records_mode
from ..data.vocab import KINDS
from ..device import PRECISIONS
from ..errors import ChargenError
from ..threads import MOST_THREADS

MAX_SAMPLE_CHARS = 100_000  # one character per model call: far more would stall every evaluation
GROUPS = ("model", "data", "optimisation", "schedule", "run", "output")  # the order of `chargen train --help`


def setting(default: Any, group: str, help: str, low: float | None = None, high: float | None = None,
            low_ok: bool = True, choices: tuple[str, ...] = (), metavar: str | None = None) -> Any:
    """A dataclass field with its help, group and bounds (inclusive, but `low` when not `low_ok`)."""
    return field(default=default, metadata={"help": help, "group": group, "low": low, "high": high,
                                            "low_ok": low_ok, "choices": choices, "metavar": metavar})


def check_settings(config: Any) -> None:
    """ChargenError naming the first field of `config` outside its declared type, bounds or choices."""
    for f in fields(config):
        value, meta = getattr(config, f.name), f.metadata
        hint = f"fix --{f.name.replace('_', '-')}"
        if meta.get("choices") and value not in meta["choices"]:
            raise ChargenError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}", hint)
        if isinstance(f.default, bool):
            if not isinstance(value, bool):
                raise ChargenError(f"{f.name} must be True or False, got {value!r}", hint)
        elif isinstance(f.default, int):
            if not isinstance(value, int) or isinstance(value, bool) or not meta["low"] <= value <= meta["high"]:
                raise ChargenError(f"{f.name} must be an integer from {meta['low']} to {meta['high']}, got {value!r}",
                                   hint)
        elif isinstance(f.default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and value <= meta["high"] and (value >= meta["low"] if meta["low_ok"] else value > meta["low"])
            if not ok:
                bound = "[" if meta["low_ok"] else "("
                raise ChargenError(f"{f.name} must be in {bound}{meta['low']}, {meta['high']}], got {value!r}", hint)
        elif not isinstance(value, str) or len(value) > 4096:
            raise ChargenError(f"{f.name} must be a string, got {value!r}", hint)


@dataclass(frozen=True)
class _Settings:
    def __post_init__(self) -> None:
        check_settings(self)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OptimConfig(_Settings):
    """How the weights learn: AdamW on batches of parallel streams, truncated BPTT, from the weights
    `seed` draws or from a trained model's (`init`: a path, or a shipped model's name, training/init.py;
    "" = random weights; it gives the model its shape, hence its place in the model's help)."""

    batch_size: int = setting(32, "optimisation", "Parallel streams per step.", 1, 1 << 20)
    seq_len: int = setting(64, "optimisation", "Characters per BPTT window.", 1, 1 << 20)
    lr: float = setting(3e-3, "optimisation", "Peak learning rate.", 0.0, 10.0, low_ok=False)
    weight_decay: float = setting(0.01, "optimisation", "AdamW's weight decay.", 0.0, 10.0)
    grad_clip: float = setting(1.0, "optimisation", "Max global gradient L2 norm.", 0.0, 1e6, low_ok=False)
    seed: int = setting(1337, "optimisation", "Random seed: the same seed gives the same run.", 0, 2**63 - 1)
    init: str = setting("", "model", "Start from a trained model instead of random weights (fine-tune it): a .pt "
                                     "file, an exported model folder, or a shipped model: base, shakespeare. Its "
                                     "shape comes with it; settings left out follow the fine-tuning recipe.",
                        metavar="MODEL")


@dataclass(frozen=True)
class ScheduleConfig(_Settings):
    """The learning rate's course (warmup, then cosine decay to a floor) and the run's budget.
    `max_steps=0` and `max_time=0` mean no limit (at least one must be set); the cosine spans
    `max_steps` when it is set, else `max_time`."""

    warmup_steps: int = setting(50, "schedule", "Steps of linear warmup.", 0, 1 << 40)
    min_lr_frac: float = setting(0.1, "schedule", "Final lr as a fraction of --lr.", 0.0, 1.0)
    max_steps: int = setting(0, "schedule", "0 = no step limit. With --resume: the run's new step limit.", 0, 1 << 40)
    max_time: float = setting(600.0, "schedule", "Seconds; 0 = no time limit. With --resume: seconds added to the "
                                                 "run.", 0.0, 1e9)
    patience: int = setting(10, "schedule", "Evaluations without improvement; 0 = off.", 0, 1 << 40)
    eval_every: int = setting(0, "schedule", "Steps between evaluations; 0 = the default.", 0, 1 << 40)
    save_every: int = setting(1000, "schedule", "Steps between last.pt saves.", 1, 1 << 40)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.max_steps == 0 and self.max_time == 0:
            raise ChargenError("training needs a limit", "set --max-steps or --max-time")


@dataclass(frozen=True)
class DataConfig(_Settings):
    """What the run reads and how it splits it. `records` reads the corpus as separate records
    ("" = one stream, data/records.py), each trained from a zero state in batches of about
    batch_size x seq_len characters."""

    vocab: str = setting("chars", "data", "chars: the corpus's characters (UTF-8 text); bytes: the 256 byte values, "
                                          "so that any file trains, at the cost of more steps per character.",
                         choices=KINDS)
    min_char_count: int = setting(1, "data", "Rarer characters become one unknown symbol.", 1, 1 << 50)
    val_frac: float = setting(0.1, "data", "Validation fraction: of one file, its tail; of several, about this "
                                           "share of the files (the last ones).", 0.0, 0.9)
    # A cap on the validation tail, so that evaluating a huge corpus stays quick.
    val_chars: int = setting(500_000, "data", "Cap on the validation tail; 0 = none.", 0, 1 << 50)
    val_files: int = setting(0, "data", "Of several files, validate on the last this many (whole files); 0 = about "
                                        "--val-frac of them.", 0, 1 << 40)
    records: str = setting("", "data", "Read CORPUS as separate records, each learned from a zero state up to an "
                                       "end-of-record symbol: lines, paragraphs (separated by blank lines) or "
                                       "jsonl:FIELD (the string FIELD of each JSON line).", metavar="MODE")
    max_record_chars: int = setting(4000, "data", "With --records: longer records are left out (and counted).",
                                    1, 1 << 30)

    def __post_init__(self) -> None:
        check_records_mode(self.records)  # first: its message names the modes
        check_settings(self)


@dataclass(frozen=True)
class RunConfig(_Settings):
    """Where and how the run goes and what it shows: what a resumed run takes from its command line
    (the rest is the run's own). `sample_chars` and `tensorboard` only watch the run: they change
    nothing in its training."""

    device: str = setting("auto", "run", "auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps.")
    precision: str = setting("auto", "run", "auto, fp32, bf16 or fp16 (autocast; fp16 on CUDA only).",
                             choices=PRECISIONS)
    threads: int = setting(0, "run", "CPU threads for PyTorch; 0 = adapt to the machine.", 0, MOST_THREADS)
    sample_chars: int = setting(200, "output", "Characters drawn at each evaluation (seeded), shown on stderr and "
                                               "kept in metrics.jsonl; 0 = none.", 0, MAX_SAMPLE_CHARS)
    tensorboard: bool = setting(False, "output", "Also write TensorBoard event files to <run>/tensorboard/ (needs: "
                                                 "pip install 'chargen[tensorboard]').")


@dataclass(frozen=True)
class TrainConfig(RunConfig, DataConfig, ScheduleConfig, OptimConfig):
    """How to train: the four groups' settings in one flat value, as the trainer reads them. The
    defaults are the CPU recipe measured in the README."""

    def __post_init__(self) -> None:
        check_records_mode(self.records)  # first: its message names the modes
        check_settings(self)
        if self.max_steps == 0 and self.max_time == 0:
            raise ChargenError("training needs a limit", "set --max-steps or --max-time")

    def part(self, cls: type) -> Any:
        """One group of the settings: `config.part(OptimConfig)`."""
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})
