"""The command line's study commands `chargen compare` and `chargen plot` (`gradflow` is in cli_gradflow).

Registered on cli.py's app (cli.py imports this module last); like cli.py they only
parse, call the library and render.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .cli import _default, _err, _finite, _guard, app
from .compare import CellResult, compare_cells
from .config import TrainConfig
from .errors import ChargenError
from .model import ModelConfig
from .plot import plot_runs


@app.command()
@_guard
def compare(
    corpus: Path = typer.Argument(..., help="UTF-8 text file to learn from.", show_default=False),
    cells: str = typer.Option("rnn,lstm,gru", help="Comma-separated cells to train in turn."),
    max_time: float = typer.Option(120.0, help="Seconds of training per cell; 0 = no time limit."),
    max_steps: int = typer.Option(0, help="Steps per cell; 0 = no step limit."),
    num_layers: int = typer.Option(_default(ModelConfig, "num_layers"), "--num-layers", "--layers"),
    hidden_size: int = typer.Option(_default(ModelConfig, "hidden_size")),
    embedding_dim: int = typer.Option(_default(ModelConfig, "embedding_dim")),
    dropout: float = typer.Option(_default(ModelConfig, "dropout")),
    batch_size: int = typer.Option(_default(TrainConfig, "batch_size")),
    seq_len: int = typer.Option(_default(TrainConfig, "seq_len")),
    eval_every: int = typer.Option(200, help="Steps between evaluations (points on the curves)."),
    seed: int = typer.Option(_default(TrainConfig, "seed")),
    device: str = typer.Option(_default(TrainConfig, "device"), help="auto, cpu, cuda, cuda:N or mps."),
    out: Optional[Path] = typer.Option(None, help="Folder for the runs (default checkpoints/<corpus>-compare)."),
    sample_length: int = typer.Option(200, help="Characters of sample per cell."),
    plot: Optional[Path] = typer.Option(None, help="Loss-curve PNG (default OUT/curves.png; needs matplotlib)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or table."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Train each cell on CORPUS for the same budget, seed and sizes; compare them in a table."""
    model = ModelConfig(num_layers=num_layers, hidden_size=hidden_size, embedding_dim=embedding_dim, dropout=dropout)
    config = TrainConfig(batch_size=batch_size, seq_len=seq_len, max_time=max_time, max_steps=max_steps,
                         eval_every=eval_every, save_every=eval_every, patience=0, seed=seed, device=device)
    out = out or Path("checkpoints") / f"{corpus.stem}-compare"
    results = compare_cells(corpus, [c.strip() for c in cells.split(",")], model, config, out,
                            sample_length=sample_length, progress=False if quiet or as_json else None)
    curves = _curves([r.run_dir for r in results], plot or out / "curves.png", explicit=plot is not None)
    if as_json:
        print(json.dumps([{**asdict(r), "run_dir": str(r.run_dir), "best_val_loss": _finite(r.best_val_loss),
                           "best_val_bpc": _finite(r.best_val_bpc)} for r in results], ensure_ascii=False))
        return
    if not quiet:
        table = _results_table(results)
        _err().print(table)
        if curves:
            sys.stderr.write(f"loss curves: {curves}\n")
    for r in results:
        sys.stdout.write(f"----- {r.cell} -----\n{r.sample}\n")


def _curves(run_dirs: list[Path], out: Path, explicit: bool) -> Path | None:
    """Draw the comparison's loss curves; a missing matplotlib only matters if the user asked for the plot."""
    try:
        return plot_runs(run_dirs, out)
    except ChargenError:
        if explicit:
            raise
        return None


def _results_table(results: list[CellResult]) -> Table:
    table = Table(title="Cell comparison", title_justify="left")
    for name in ("cell", "parameters", "best val loss", "bpc", "chars/s", "time s"):
        table.add_column(name, justify="left" if name == "cell" else "right")
    for r in results:
        table.add_row(r.cell, f"{r.parameters:,}", f"{r.best_val_loss:.4f}", f"{r.best_val_bpc:.4f}",
                      f"{r.chars_per_s:,.0f}", f"{r.elapsed:.1f}")
    return table


@app.command()
@_guard
def plot(
    run_dirs: List[Path] = typer.Argument(..., help="Run folders holding metrics.jsonl.", show_default=False),
    out: Path = typer.Option(Path("curves.png"), help="PNG file to write."),
) -> None:
    """Plot training and validation loss against steps and wall time (needs matplotlib)."""
    written = plot_runs(list(run_dirs), out)
    sys.stderr.write(f"wrote {written}\n")


from . import cli_gradflow  # noqa: E402,F401 - registers gradflow on `app`
