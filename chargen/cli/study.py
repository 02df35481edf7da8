"""The command line's study commands `chargen compare` and `chargen plot` (`gradflow` has its own
module): they parse, call the library and render.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..data import Sources
from ..errors import ChargenError
from ..model.charrnn import ModelConfig
from ..study.compare import CellResult, compare_cells
from ..study.plot import plot_runs, require_matplotlib
from ..config import TrainConfig
from .common import console, field_default, finite
from .options import (
    BatchSize,
    CorpusArg,
    Device,
    EmbeddingDim,
    Exclude,
    HiddenSize,
    Include,
    Json,
    NumLayers,
    Quiet,
    Seed,
    SeqLen,
    VocabKind,
)


def compare(
    corpus: CorpusArg,
    include: Include = None,
    exclude: Exclude = None,
    vocab: VocabKind = field_default(TrainConfig, "vocab"),
    cells: str = typer.Option("rnn,lstm,gru", help="Comma-separated cells to train in turn."),
    max_time: float = typer.Option(120.0, help="Seconds of training per cell; 0 = no time limit."),
    max_steps: int = typer.Option(0, help="Steps per cell; 0 = no step limit."),
    num_layers: NumLayers = field_default(ModelConfig, "num_layers"),
    hidden_size: HiddenSize = field_default(ModelConfig, "hidden_size"),
    embedding_dim: EmbeddingDim = field_default(ModelConfig, "embedding_dim"),
    dropout: float = typer.Option(field_default(ModelConfig, "dropout")),
    batch_size: BatchSize = field_default(TrainConfig, "batch_size"),
    seq_len: SeqLen = field_default(TrainConfig, "seq_len"),
    eval_every: int = typer.Option(200, help="Steps between evaluations (points on the curves)."),
    seed: Seed = field_default(TrainConfig, "seed"),
    device: Device = field_default(TrainConfig, "device"),
    out: Optional[Path] = typer.Option(None, help="Folder for the runs (default checkpoints/<corpus>-compare)."),
    sample_length: int = typer.Option(200, help="Characters of sample per cell."),
    plot: Optional[Path] = typer.Option(None, help="Loss-curve PNG (default OUT/curves.png)."),
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Train each cell on CORPUS for the same budget, seed and sizes; compare them in a table."""
    model = ModelConfig(num_layers=num_layers, hidden_size=hidden_size, embedding_dim=embedding_dim, dropout=dropout)
    config = TrainConfig(batch_size=batch_size, seq_len=seq_len, max_time=max_time, max_steps=max_steps,
                         eval_every=eval_every, save_every=eval_every, patience=0, seed=seed, device=device,
                         vocab=vocab, sample_chars=0)  # compare shows its own samples after training
    sources = Sources(tuple(map(str, corpus)), tuple(include or ()), tuple(exclude or ()))
    out = out or Path("checkpoints") / f"{sources.name}-compare"
    if plot is not None:
        require_matplotlib()  # an explicit --plot that cannot be drawn fails now, not after the training budget
    results = compare_cells(sources, [c.strip() for c in cells.split(",")], model, config, out,
                            sample_length=sample_length, progress=False if quiet or as_json else None)
    title = f"{', '.join(r.cell for r in results)} on {sources.name}: same sizes, seed and budget"
    curves = _curves([r.run_dir for r in results], plot or out / "curves.png", title, explicit=plot is not None)
    if as_json:
        print(json.dumps([{**asdict(r), "run_dir": str(r.run_dir), "best_val_loss": finite(r.best_val_loss),
                           "best_val_bpc": finite(r.best_val_bpc)} for r in results], ensure_ascii=False))
        return
    if not quiet:
        table = _results_table(results)
        console().print(table)
        if curves:
            sys.stderr.write(f"loss curves: {curves}\n")
    for r in results:
        sys.stdout.write(f"----- {r.cell} -----\n{r.sample}\n")


def _curves(run_dirs: list[Path], out: Path, title: str, explicit: bool) -> Path | None:
    """Draw the comparison's loss curves to `out`. A failure with an explicit --plot is an error; with
    the default path it leaves the finished runs standing and says, on one stderr line, why there are
    no curves and how to fix it (every time, also with --quiet and --json: it is the only trace)."""
    try:
        return plot_runs(run_dirs, out, title=title)
    except ChargenError as e:
        if explicit:
            raise
        hint = f" (hint: {e.hint})" if e.hint else ""
        sys.stderr.write(f"warning: no loss curves: {e.message}{hint}\n")
        return None


def _results_table(results: list[CellResult]) -> Table:
    table = Table(title="Cell comparison", title_justify="left")
    for name in ("cell", "parameters", "best val loss", "bpc", "chars/s", "time s"):
        table.add_column(name, justify="left" if name == "cell" else "right")
    for r in results:
        table.add_row(r.cell, f"{r.parameters:,}", f"{r.best_val_loss:.4f}", f"{r.best_val_bpc:.4f}",
                      f"{r.chars_per_s:,.0f}", f"{r.elapsed:.1f}")
    return table


def plot(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders holding metrics.jsonl.", show_default=False),
    out: Path = typer.Option(Path("curves.png"), help="PNG file to write."),
) -> None:
    """Plot training and validation loss against steps and wall time."""
    written = plot_runs(list(run_dirs), out)
    sys.stderr.write(f"wrote {written}\n")
