"""Default settings by device: the values `chargen train` uses for what the user leaves out.

On a CPU the recipe is ModelConfig's and TrainConfig's own defaults (GRU 2x256, batch
32 x 64, chosen on a 2-core CPU), but for the dropout, which depends on how many passes
over the training text the budget allows (`choose_dropout`): none for a few passes,
where every update counts, and 0.1 for more, where the model would otherwise overfit.
train() applies that rule once it knows the corpus's characters (and, for a time limit,
the speed of this machine). A CUDA GPU has the throughput for a much larger, more
regularised model: an LSTM 3x1024 with dropout 0.5 and weight decay 0.1 at batch
128 x 128 (chosen on an H100; benchmarks/README.md has the runs). Other devices get
the CPU recipe.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..errors import ChargenError
from ..model.charrnn import ModelConfig
from ..config import TrainConfig
from .init import ARCHITECTURE, check_architecture, read_base

GPU = {"cell": "lstm", "num_layers": 3, "hidden_size": 1024, "embedding_dim": 256, "dropout": 0.5,
       "batch_size": 128, "seq_len": 128, "lr": 2e-3, "weight_decay": 0.1}
_MODEL_FIELDS = {f.name for f in fields(ModelConfig)}
# A run started from a trained model (--init) on any device: a lower peak rate and a short warmup,
# so the first steps refine what the model knows instead of unlearning it; dropout, since a small
# corpus is seen many times over; frequent evaluations and a short patience, so best.pt holds the
# model from before it starts to memorise the corpus. Measured on small corpora: docs/recipes.md.
FINETUNE = {"lr": 1e-3, "warmup_steps": 20, "dropout": 0.1, "eval_every": 100, "patience": 5}

# The CPU recipe's dropout, measured on a 2-core CPU (tinyshakespeare, 2026-11-25;
# benchmarks/README.md): with a 140 s budget (about 4 passes) no dropout reached
# 1.462 nats/char against 1.492 with 0.1 (means of 3 and 4 runs); with 600 s (about 18)
# 0.1 reached 1.440 against 1.503. With step budgets (2026-11-26, one run each): at 6
# passes 0 reached 1.450 against 1.461, at 9 passes 1.463 against 1.449; they cross near 7.
SHORT_PASSES = 6.0
LONG_DROPOUT = 0.1  # beyond SHORT_PASSES
# Steps between evaluations when none is given (eval_every 0): about one pass over the training text,
# within these bounds. A small text is seen many times over in a few minutes, and a model trained
# from scratch on 90 KB is past its best within a few passes: evaluating every 1,000 steps (24 passes
# of 90 KB at 32 x 64) would keep an overfitted best.pt (docs/recipes.md, "Evaluation follows the
# corpus", has the runs). A large corpus keeps 1,000: each evaluation reads the whole validation text.
EVAL_STEPS = (100, 1000)


@dataclass(frozen=True)
class DropoutChoice:
    """The dropout rule's verdict and what it was based on."""

    dropout: float
    passes: float  # planned passes over the training text
    train_chars: int  # characters in the training part of the corpus
    max_steps: int  # the step limit the passes come from, or 0 when they come from
    max_time: float  # the time limit (seconds)
    chars_per_s: float | None = None  # at this measured speed

    def reason(self) -> str:
        """Why, in one line: '4.0 planned passes (600 s at 36,000 chars/s measured, over
        4,516,000 training characters): dropout 0 up to 6 passes, 0.1 beyond'."""
        if self.max_steps:
            budget = f"{self.max_steps:,} steps"
        else:
            budget = f"{self.max_time:g} s at {self.chars_per_s:,.0f} chars/s measured"
        return (f"{self.passes:.1f} planned passes ({budget}, over {self.train_chars:,} training characters): "
                f"dropout 0 up to {SHORT_PASSES:g} passes, {LONG_DROPOUT} beyond")


def recipe(device: torch.device) -> dict:
    """The settings that differ from the dataclass defaults on this device."""
    return dict(GPU) if device.type == "cuda" else {}


def planned_passes(train: TrainConfig, train_chars: int, chars_per_s: float | None = None) -> float:
    """Passes over `train_chars` characters of training text that the budget allows. With a step
    limit, its characters (`max_steps x batch_size x seq_len`), which no machine changes; with a
    time limit alone, the time at `chars_per_s`, the speed measured on this machine."""
    budget: float  # characters
    if train.max_steps:
        budget = train.max_steps * train.batch_size * train.seq_len
    elif chars_per_s is None:
        raise ValueError("a time budget needs the measured speed")
    else:
        budget = train.max_time * chars_per_s
    return budget / max(1, train_chars)


def choose_dropout(train: TrainConfig, train_chars: int, chars_per_s: float | None = None) -> DropoutChoice:
    """The CPU recipe's dropout: 0 for at most SHORT_PASSES planned passes, LONG_DROPOUT beyond."""
    passes = planned_passes(train, train_chars, chars_per_s)
    return DropoutChoice(0.0 if passes <= SHORT_PASSES else LONG_DROPOUT, passes, train_chars, train.max_steps,
                         train.max_time, None if train.max_steps else chars_per_s)


def eval_cadence(train: TrainConfig, train_chars: int, ranks: int = 1) -> int:
    """Steps between evaluations for `eval_every` 0: the steps of one pass over `train_chars`
    training characters (all ranks together), to the nearest 100, within EVAL_STEPS."""
    per_pass = train_chars / (train.batch_size * train.seq_len * max(1, ranks))
    return int(min(EVAL_STEPS[1], max(EVAL_STEPS[0], round(per_pass, -2))))


def dropout_rule_applies(target: torch.device, dropout: float | None) -> bool:
    """Whether the dropout rule picks the dropout: none was given and the device's recipe sets none."""
    return dropout is None and "dropout" not in recipe(target)


def default_configs(target: torch.device, init: str | None = None, **given) -> tuple[ModelConfig, TrainConfig]:
    """A ModelConfig and a TrainConfig from `given` (None = not given) and the recipe of the
    `target` device for the rest. A dropout neither given nor set by the recipe is ModelConfig's
    0.1 here; pass `auto_dropout=dropout_rule_applies(...)` to train() to apply the rule.

    With `init` (a model to start from: init.py), the FINETUNE recipe comes on top, and the
    model's shape is the base's: a shape in `given` that differs raises ChargenError."""
    base = {}
    if init:
        _, ckpt = read_base(init)
        check_architecture(ckpt.model_config, given)
        base = {**FINETUNE, **{k: getattr(ckpt.model_config, k) for k in ARCHITECTURE},
                "vocab": ckpt.vocab.kind, "init": str(init)}
        if given.get("vocab") not in (None, ckpt.vocab.kind):
            raise ChargenError(f"--vocab {given['vocab']} contradicts the --init model, which reads "
                               f"{ckpt.vocab.kind}", "leave out --vocab: a fine-tune reads what its base reads")
    values = {**recipe(target), **base, **{k: v for k, v in given.items() if v is not None}}
    train = TrainConfig(**{k: v for k, v in values.items() if k not in _MODEL_FIELDS})
    model = ModelConfig(**{k: v for k, v in values.items() if k in _MODEL_FIELDS})
    return model, train


# What the help says of a default that no single value states.
DEFAULT_TEXT = {
    "dropout": "(default: on a CPU 0 when the budget allows at most 6 passes over the corpus, else 0.1: passes "
               "from --max-steps if set, else from --max-time at the speed measured at the start; 0.5 on a GPU; "
               "0.1 with --init)",
    "vocab": "(default: chars; with --init, the model's own)", "init": "(default: random weights)",
    "records": "(default: none, one stream)",
    "eval_every": "(default: about one pass over the training text, 100 to 1000 steps; 100 with --init)"}


def default_help(name: str) -> str:
    """'(default: x on a CPU, y on a GPU; z with --init)' for a setting the recipes choose, for the CLI's help."""
    if name in DEFAULT_TEXT:
        return DEFAULT_TEXT[name]
    cpu = {f.name: f.default for f in fields(ModelConfig) + fields(TrainConfig)}[name]
    text = f"{cpu} on a CPU, {GPU[name]} on a GPU" if name in GPU else f"{cpu}"
    return f"(default: {text}; {FINETUNE[name]} with --init)" if name in FINETUNE else f"(default: {text})"
