"""Comparing cells: train rnn, lstm and gru on one corpus under one protocol, then sample each.

The protocol says what is held equal: a budget of steps (the default: the same characters on any
machine), of seconds, or training until validation stops improving; and either the same sizes or
about the same number of parameters (Karpathy, Johnson & Fei-Fei 2015). It only orchestrates
train() and sample_texts() and returns plain results; rendering them is the CLI's job.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data import Sources
from ..data.cache import CorpusPaths
from ..errors import ChargenError
from ..model.charrnn import CELLS, ModelConfig
from ..sample.sampler import SampleConfig, sample_texts
from ..config import TrainConfig
from ..training.corpus_source import load_for_run
from ..training.distributed import World
from ..modelfile import load_model
from ..training.loop import train
from ..training.runs import has_checkpoints, mark_comparison

SAMPLE_TEMPERATURE = 0.8  # a little below 1: typical text, not the model's rarest guesses
BUDGETS = ("steps", "time", "converge")
GATE_SETS = {"rnn": 1, "gru": 3, "lstm": 4}  # weight sets per layer: the cell's gates and candidate


@dataclass
class CellResult:
    cell: str
    parameters: int
    best_val_loss: float  # nats per character; inf if never evaluated
    best_val_bpc: float  # bits per character
    chars_per_s: float  # training throughput, evaluation excluded
    elapsed: float  # seconds in the training loop
    run_dir: Path
    sample: str  # sample_length characters from best.pt at SAMPLE_TEMPERATURE, seeded with config.seed
    hidden_size: int = 0
    steps: int = 0
    chars_seen: int = 0  # characters in the training windows of those steps (steps x batch x seq_len)
    stop_reason: str = ""  # max_steps | max_time | patience
    dropout: float = 0.0


def parse_cells(cells: list[str]) -> list[str]:
    """Check a cell list: non-empty, each one of rnn/lstm/gru, no repeats. Returns it unchanged."""
    if not cells:
        raise ChargenError("no cells to compare", "pass --cells rnn,lstm,gru")
    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise ChargenError(f"unknown cell {unknown[0]!r}", "use a comma-separated subset of: rnn, lstm, gru")
    repeated = sorted({c for c in cells if cells.count(c) > 1})
    if repeated:
        raise ChargenError(f"cell {repeated[0]!r} is listed twice", "name each cell once")
    return list(cells)


def budget_config(config: TrainConfig, budget: str, max_steps: int, max_time: float, patience: int) -> TrainConfig:
    """`config` with the protocol's limits: `steps` trains exactly `max_steps` steps, `time` for
    `max_time` seconds (more steps for a cheaper cell and on a faster machine), `converge` until
    `patience` evaluations in a row bring no better validation loss, at most `max_steps` steps."""
    if budget not in BUDGETS:
        raise ChargenError(f"unknown budget {budget!r}", "use --budget steps, time or converge")
    if budget == "time":
        if max_time <= 0:
            raise ChargenError("--budget time needs a positive --max-time", "try --max-time 120")
        return replace(config, max_time=max_time, max_steps=0, patience=0)
    if max_steps <= 0:
        raise ChargenError(f"--budget {budget} needs a positive --max-steps", "try --max-steps 1000")
    if budget == "converge" and patience <= 0:
        raise ChargenError("--budget converge needs a positive --patience", "try --patience 3")
    return replace(config, max_steps=max_steps, max_time=0.0, patience=patience if budget == "converge" else 0)


def count_parameters(model: ModelConfig) -> int:
    """CharRNN's parameter count without building it: embedding V x E, per layer and weight set
    (in + H) x H weights and two H biases, head H x V + V. Equals CharRNN(model).num_parameters()."""
    v, e, h, layers = model.vocab_size, model.embedding_dim, model.hidden_size, model.num_layers
    recurrent = (e + h + 2) * h + (layers - 1) * (2 * h + 2) * h
    return v * e + GATE_SETS[model.cell] * recurrent + h * v + v


def hidden_for_parameters(model: ModelConfig, target: int) -> int:
    """The hidden size (1 to 65536) whose parameter count is nearest `target`, the rest of `model` kept."""
    low, high = 1, 65536
    while low < high:  # the smallest size with at least `target` parameters (the count grows with H)
        mid = (low + high) // 2
        if count_parameters(replace(model, hidden_size=mid)) < target:
            low = mid + 1
        else:
            high = mid
    near = [h for h in (low - 1, low) if h >= 1]
    return min(near, key=lambda h: abs(count_parameters(replace(model, hidden_size=h)) - target))


def corpus_vocab_size(corpus_path: CorpusPaths, config: TrainConfig) -> int:
    """The vocabulary size a run of `config` on `corpus_path` would have (the prepared cache makes
    the run's own read of it cheap afterwards)."""
    corpus = load_for_run(Sources.of(corpus_path), config, World(), progress=False)
    return len(corpus.vocab)


def cell_models(cells: list[str], base_model: ModelConfig, vocab_size: int, equal_params: int) -> list[ModelConfig]:
    """One ModelConfig per cell: `base_model` with the cell swapped in, and with `equal_params` > 0
    the hidden size that brings each to about that many parameters."""
    if equal_params < 0:
        raise ChargenError(f"--equal-params must be 0 (off) or a parameter count, got {equal_params}",
                           "try --equal-params 500000")
    models = [replace(base_model, cell=c, vocab_size=vocab_size) for c in cells]
    if equal_params == 0:
        return models
    sized = [replace(m, hidden_size=hidden_for_parameters(m, equal_params)) for m in models]
    for m in sized:
        if abs(count_parameters(m) - equal_params) > 0.05 * equal_params:
            raise ChargenError(f"no {m.cell} of {m.num_layers} layers with embedding {m.embedding_dim} has about "
                               f"{equal_params:,} parameters (nearest {count_parameters(m):,})",
                               "pass a larger --equal-params or a smaller --embedding-dim")
    return sized


def compare_cells(corpus_path: str | Path | Sources, cells: list[str], base_model: ModelConfig, config: TrainConfig,
                  out_root: Path, sample_length: int = 200, progress: bool | None = False, equal_params: int = 0,
                  auto_dropout: bool = False) -> list[CellResult]:
    """Train each cell in order into `out_root/<cell>` with the same corpus, seed and budget (the
    limits in `config`: see budget_config), then draw one sample from its best.pt. With
    `equal_params`, each cell's hidden size is chosen for about that many parameters; with
    `auto_dropout`, each run's dropout is the CPU recipe's rule (recipes.choose_dropout), as
    `chargen train` picks it. Results come back in the order of `cells`.

    Everything is checked before the first run starts: the cell list, the sizes, the sample length,
    and that no `out_root/<cell>` already holds a run. `out_root` gets a `comparison.json` marker,
    so that `chargen sample` without a checkpoint does not take these runs for training runs.
    Raises ChargenError as train() does.
    """
    cells = parse_cells(cells)
    sample_cfg = SampleConfig(length=sample_length, temperature=SAMPLE_TEMPERATURE, seed=config.seed)
    out_root = Path(out_root)
    taken = [out_root / c for c in cells if has_checkpoints(out_root / c)]
    if taken:
        raise ChargenError(f"{taken[0]} already holds a run", "pass another --out folder for the comparison")
    vocab_size = corpus_vocab_size(corpus_path, config) if equal_params > 0 else base_model.vocab_size
    models = cell_models(cells, base_model, vocab_size, equal_params)
    mark_comparison(out_root, cells)
    return [_train_and_sample(corpus_path, m, config, out_root / m.cell, sample_cfg, progress, auto_dropout)
            for m in models]


def _train_and_sample(corpus_path: CorpusPaths, model_config: ModelConfig, config: TrainConfig, run_dir: Path,
                      sample_cfg: SampleConfig, progress: bool | None, auto_dropout: bool) -> CellResult:
    result = train(corpus_path, model_config, config, out=run_dir, progress=progress, auto_dropout=auto_dropout)
    model, vocab, _ = load_model(result.run_dir / "best.pt")
    # Sampled on the CPU whatever the training device: the same seed then gives the same text.
    text = sample_texts(model, vocab, sample_cfg, "cpu")[0]
    trained = result.model_config or model_config
    return CellResult(model_config.cell, result.parameters, result.best_val_loss, result.best_val_bpc,
                      result.chars_per_s, result.elapsed, result.run_dir, text, trained.hidden_size, result.steps,
                      result.steps * config.batch_size * config.seq_len, result.stop_reason, trained.dropout)
