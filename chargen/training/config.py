"""Training settings and the learning-rate schedule: pure values, no tensors, no I/O."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from ..data.records import check_records_mode
from ..data.vocab import KINDS
from ..device import PRECISIONS
from ..errors import ChargenError

MAX_SAMPLE_CHARS = 100_000  # one character per model call: far more would stall every evaluation


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults are the CPU recipe measured in the README.

    `max_steps=0` and `max_time=0` mean no limit (at least one must be set); the
    learning-rate schedule runs over `max_steps` when it is set, else over `max_time`.
    `records` reads the corpus as separate records ("lines", "paragraphs" or "jsonl:FIELD";
    "" = one stream, data/records.py), each trained from a zero state in batches of about
    batch_size x seq_len characters; records longer than `max_record_chars` are left out.
    `sample_chars` and `tensorboard` only watch the run: they change nothing in its training.
    The `extended_*` fields and `corpus` are not settings: `extend_budget` writes the former
    when a resume gives a run a new budget, and `lr_at` then decays from there (see `lr_at`);
    train() writes the latter, the absolute paths of the corpus the run reads, and its patterns
    `include` and `exclude` (a resume given none reads the run's own).
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
    val_files: int = 0  # with several files: the last this many validate; 0 = about val_frac of them
    min_char_count: int = 1  # rarer characters share one unknown symbol
    vocab: str = "chars"  # chars: the corpus's characters (UTF-8); bytes: the 256 byte values (any file)
    seed: int = 1337
    device: str = "auto"
    precision: str = "auto"
    sample_chars: int = 200  # characters of text drawn at each evaluation (metrics.jsonl, stderr); 0 = none
    tensorboard: bool = False  # also write TensorBoard event files into <run>/tensorboard/
    records: str = ""
    max_record_chars: int = 4000
    extended_at_step: int = 0  # where the last budget extension began (0 = never extended),
    extended_at_time: float = 0.0  # its second of training,
    extended_from_lr: float = 0.0  # and the learning rate there
    corpus: str = ""  # the corpus file's absolute path, as train() read it ("" before it has)
    include: tuple[str, ...] = ()  # the corpus's --include patterns, as train() read it
    exclude: tuple[str, ...] = ()  # the corpus's --exclude patterns, as train() read it
    threads: int = 0  # CPU threads for the steps; 0 = follow the machine (chargen/threads.py)
    init: str = ""  # start from this model (a path, or a shipped model's name: training/init.py); "" = random weights

    def __post_init__(self) -> None:
        checks = [
            ("batch_size", 1, 1 << 20), ("seq_len", 1, 1 << 20), ("warmup_steps", 0, 1 << 40),
            ("max_steps", 0, 1 << 40), ("patience", 0, 1 << 40), ("eval_every", 1, 1 << 40),
            ("save_every", 1, 1 << 40), ("seed", 0, 2**63 - 1),
            ("val_chars", 0, 1 << 50), ("val_files", 0, 1 << 40), ("min_char_count", 1, 1 << 50),
            ("extended_at_step", 0, 1 << 40), ("sample_chars", 0, MAX_SAMPLE_CHARS), ("max_record_chars", 1, 1 << 30),
            ("threads", 0, 4096),
        ]
        for name, low, high in checks:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ChargenError(f"{name} must be an integer from {low} to {high}, got {value!r}",
                                   f"fix --{name.replace('_', '-')}")
        finite = [("lr", 0.0, 10.0, False), ("weight_decay", 0.0, 10.0, True), ("min_lr_frac", 0.0, 1.0, True),
                  ("grad_clip", 0.0, 1e6, False), ("max_time", 0.0, 1e9, True), ("val_frac", 0.0, 0.9, True),
                  ("extended_at_time", 0.0, 1e9, True), ("extended_from_lr", 0.0, 10.0, True)]
        for name, low, high, low_ok in finite:
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and math.isfinite(value) and value <= high
            ok = ok and (value >= low if low_ok else value > low)
            if not ok:
                bound = "[" if low_ok else "("
                raise ChargenError(f"{name} must be in {bound}{low}, {high}], got {value!r}",
                                   f"fix --{name.replace('_', '-')}")
        if not isinstance(self.tensorboard, bool):
            raise ChargenError(f"tensorboard must be True or False, got {self.tensorboard!r}",
                               "pass --tensorboard, or leave it out")
        if self.vocab not in KINDS:
            raise ChargenError(f"unknown vocabulary {self.vocab!r}", "use --vocab chars or --vocab bytes")
        if self.precision not in PRECISIONS:
            raise ChargenError(f"unknown precision {self.precision!r}", "use --precision auto, fp32, bf16 or fp16")
        check_records_mode(self.records)
        if not isinstance(self.init, str) or len(self.init) > 4096:
            raise ChargenError(f"init must be a path or a shipped model's name, got {self.init!r}",
                               "pass --init PATH or --init base")
        if not isinstance(self.corpus, str):
            raise ChargenError(f"corpus must be a path, got {self.corpus!r}", "pass the corpus file's path")
        for name in ("include", "exclude"):  # a list when read back from JSON (an exported folder)
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
                raise ChargenError(f"{name} must be a list of patterns, got {value!r}", f"fix --{name}")
            object.__setattr__(self, name, tuple(value))
        if self.max_steps == 0 and self.max_time == 0:
            raise ChargenError("training needs a limit", "set --max-steps or --max-time")

    def to_dict(self) -> dict:
        """Plain values: the patterns as lists, as JSON (info --json, an exported folder) reads them back."""
        return {**asdict(self), "include": list(self.include), "exclude": list(self.exclude)}


def lr_at(config: TrainConfig, step: int, elapsed: float) -> float:
    """The learning rate of step `step` (0-based) taken at `elapsed` seconds of training.

    Linear warmup over `warmup_steps`, then cosine decay to `min_lr_frac * lr` at the end of the
    budget. After a resume that extended the budget (`extended_at_step` > 0), a new cosine runs
    from that resume point's rate, `extended_from_lr`, down to the same floor at the new end:
    the rate is continuous at the resume point, and a run that had finished (at the floor)
    continues at the floor.
    """
    if config.extended_at_step:
        if config.max_steps:
            progress = (step - config.extended_at_step) / max(1, config.max_steps - config.extended_at_step)
        else:
            progress = (elapsed - config.extended_at_time) / max(1e-9, config.max_time - config.extended_at_time)
        floor = config.min_lr_frac * config.lr
        return floor + (config.extended_from_lr - floor) * _cosine(progress)
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.max_steps:
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    else:
        progress = elapsed / config.max_time
    floor = config.min_lr_frac
    return config.lr * (floor + (1 - floor) * _cosine(progress))


def _cosine(progress: float) -> float:
    """1 at the start of a decay, 0 at its end (progress clamped to [0, 1])."""
    return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def extend_budget(config: TrainConfig, step: int, elapsed: float, more_time: float | None = None,
                  max_steps: int | None = None) -> TrainConfig:
    """`config` with a new budget for a run resumed at `step` after `elapsed` seconds.

    The limits given replace the run's own, and a limit not given is off: `more_time` seconds
    on top of `elapsed` (0 = no time limit), `max_steps` a new total step limit. Past the warmup
    the schedule becomes a new cosine from the rate at this point to the floor at the new end
    (`lr_at`); within the warmup, the warmup goes on and the usual cosine spans the new budget.
    Raises ChargenError for a step limit the run has reached already, or no limit at all.
    """
    if max_steps is not None and 0 < max_steps <= step:
        raise ChargenError(f"the run is at step {step} already, so --max-steps {max_steps} gives it nothing",
                           f"give --max-steps above {step}, or --max-time SECONDS to add time")
    budget = replace(config, max_time=elapsed + more_time if more_time else 0.0, max_steps=max_steps or 0)
    if step == 0 or (step < config.warmup_steps and not config.extended_at_step):
        return budget
    return replace(budget, extended_at_step=step, extended_at_time=elapsed,
                   extended_from_lr=lr_at(config, step, elapsed))
