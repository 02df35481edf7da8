"""Comparing cells: train rnn, lstm and gru on one corpus with one seed and budget, then sample each.

It only orchestrates train() and sample_texts() and returns plain results; rendering the
table and the samples is the CLI's job.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data.cache import CorpusPaths
from ..errors import ChargenError
from ..model.charrnn import CELLS, ModelConfig
from ..sample.sampler import SampleConfig, sample_texts
from ..config import TrainConfig
from ..modelfile.load import load_model
from ..training.loop import train
from ..training.runs import has_checkpoints, mark_comparison

SAMPLE_TEMPERATURE = 0.8  # a little below 1: typical text, not the model's rarest guesses


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


def compare_cells(corpus_path: CorpusPaths, cells: list[str], base_model: ModelConfig, config: TrainConfig,
                  out_root: Path, sample_length: int = 200, progress: bool | None = False) -> list[CellResult]:
    """Train each cell in order into `out_root/<cell>` with the same corpus, sizes, seed and budget,
    then draw one sample from its best.pt. Results come back in the order of `cells`.

    Everything is checked before the first run starts: the cell list, the sample length, and
    that no `out_root/<cell>` already holds a run. `out_root` gets a `comparison.json` marker,
    so that `chargen sample` without a checkpoint does not take these runs for training runs.
    Raises ChargenError as train() does.
    """
    cells = parse_cells(cells)
    sample_cfg = SampleConfig(length=sample_length, temperature=SAMPLE_TEMPERATURE, seed=config.seed)
    out_root = Path(out_root)
    taken = [out_root / c for c in cells if has_checkpoints(out_root / c)]
    if taken:
        raise ChargenError(f"{taken[0]} already holds a run", "pass another --out folder for the comparison")
    mark_comparison(out_root, cells)
    return [_train_and_sample(corpus_path, replace(base_model, cell=cell), config, out_root / cell, sample_cfg,
                              progress) for cell in cells]


def _train_and_sample(corpus_path: CorpusPaths, model_config: ModelConfig, config: TrainConfig, run_dir: Path,
                      sample_cfg: SampleConfig, progress: bool | None) -> CellResult:
    result = train(corpus_path, model_config, config, out=run_dir, progress=progress)
    model, vocab, _ = load_model(result.run_dir / "best.pt")
    # Sampled on the CPU whatever the training device: the same seed then gives the same text.
    text = sample_texts(model, vocab, sample_cfg, "cpu")[0]
    return CellResult(model_config.cell, result.parameters, result.best_val_loss, result.best_val_bpc,
                      result.chars_per_s, result.elapsed, result.run_dir, text)
