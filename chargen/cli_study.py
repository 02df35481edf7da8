"""The command line's study commands: `chargen compare`, `chargen plot` and `chargen gradflow`.

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

from .checkpoint import load_model
from .cli import _checkpoint_path, _default, _err, _finite, _guard, app
from .compare import CellResult, compare_cells
from .config import TrainConfig
from .corpus import read_text
from .device import resolve_device
from .errors import ChargenError
from .gradflow import gradient_flow_report
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


@app.command()
@_guard
def gradflow(
    checkpoint: Optional[Path] = typer.Argument(None, help="A .pt file (default: newest best.pt).",
                                                show_default=False),
    text: Optional[Path] = typer.Option(None, help="UTF-8 text to read (default: the --prime string)."),
    prime: str = typer.Option("", help="Text to read when --text is not given."),
    offset: int = typer.Option(0, help="Character of --text to start at."),
    max_lag: int = typer.Option(50, help="How many steps back to measure."),
    threshold: float = typer.Option(1e-3, help="Horizon: first lag whose norm is below threshold x lag-0 norm."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda, cuda:N or mps."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
) -> None:
    """How far back the gradient reaches: |d loss_t / d h_(t-k)| for k = 0..max-lag."""
    if max_lag < 0 or offset < 0:
        raise ChargenError("--max-lag and --offset must be 0 or more", "try --max-lag 50")
    model, vocab, _ = load_model(_checkpoint_path(checkpoint, as_json))
    source = read_text(text) if text is not None else prime
    ids = vocab.encode(source[offset: offset + max_lag + 2])  # (max_lag + 2,)
    report = gradient_flow_report(model, ids, max_lag, threshold=threshold, device=resolve_device(device))
    if as_json:
        print(json.dumps({k: _finite(v) if isinstance(v, float) else v for k, v in report.items()}))
        return
    table = Table(title=f"Gradient flow, {report['cell']}", title_justify="left")
    for name in ("lag k", "|dL/dh(t-k)|", "relative to k=0"):
        table.add_column(name, justify="right")
    first = report["norms"][0]
    shown = [k for k in report["lags"] if k <= 10 or k in (15, 20, 30, 50, 100, 200, 500) or k == max_lag]
    for k in shown:
        norm = report["norms"][k]
        table.add_row(str(k), f"{norm:.3e}", f"{norm / first:.3e}" if first > 0 else "-")
    _err().print(table)
    horizon = report["horizon"]
    sys.stderr.write(f"horizon: {horizon} steps (norm below {threshold:g} x the lag-0 norm)\n" if horizon is not None
                     else f"no vanishing below {threshold:g} x the lag-0 norm within {max_lag} steps\n")
