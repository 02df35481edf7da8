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
from rich import box
from rich.table import Table

from ..data import Sources
from ..device import resolve_device
from ..errors import ChargenError
from ..model.charrnn import ModelConfig
from ..study.compare import CellResult, budget_config, compare_cells
from ..study.plot import plot_runs, require_matplotlib
from ..config import TrainConfig
from ..training.recipes import dropout_rule_applies, recipe
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

STEPS_DEFAULT = 1000  # steps per cell: the same characters on any machine, a few minutes on a 2-core CPU
CONVERGE_CAP = 20000


def compare(
    corpus: CorpusArg,
    include: Include = None,
    exclude: Exclude = None,
    vocab: VocabKind = field_default(TrainConfig, "vocab"),
    cells: str = typer.Option("rnn,lstm,gru", help="Comma-separated cells to train in turn."),
    budget: str = typer.Option("steps", help="What each cell gets alike: steps (--max-steps; the same characters "
                                             "on any machine), time (--max-time seconds; a faster machine or "
                                             "a cheaper cell takes more steps), or converge (until --patience "
                                             "evaluations bring no better validation loss, at most --max-steps)."),
    max_steps: int = typer.Option(0, help=f"Steps per cell, or converge's cap (0: {STEPS_DEFAULT} for steps, "
                                          f"{CONVERGE_CAP} for converge)."),
    max_time: float = typer.Option(120.0, help="Seconds of training per cell with --budget time."),
    patience: int = typer.Option(3, help="Evaluations without a better validation loss that end a cell "
                                         "with --budget converge."),
    equal_params: int = typer.Option(0, help="Give every cell about this many parameters by choosing its "
                                             "hidden size (the 2015 paper's way); 0 = the same sizes for all."),
    num_layers: NumLayers = field_default(ModelConfig, "num_layers"),
    hidden_size: HiddenSize = field_default(ModelConfig, "hidden_size"),
    embedding_dim: EmbeddingDim = field_default(ModelConfig, "embedding_dim"),
    dropout: Optional[float] = typer.Option(None, help="Dropout (default: as chargen train chooses it)."),
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
    """Train each cell on CORPUS under one protocol (budget, seed, sizes or parameters); compare them in a table."""
    steps = max_steps or (CONVERGE_CAP if budget == "converge" else STEPS_DEFAULT)
    target = resolve_device(device)
    auto = dropout_rule_applies(target, dropout)
    given = dropout if dropout is not None else recipe(target).get("dropout", 0.0)
    model = ModelConfig(num_layers=num_layers, hidden_size=hidden_size, embedding_dim=embedding_dim, dropout=given)
    config = TrainConfig(batch_size=batch_size, seq_len=seq_len, max_steps=steps, max_time=0, eval_every=eval_every,
                         save_every=eval_every, seed=seed, device=device, vocab=vocab,
                         sample_chars=0)  # compare shows its own samples after training
    config = budget_config(config, budget, steps, max_time, patience)
    sources = Sources(tuple(map(str, corpus)), tuple(include or ()), tuple(exclude or ()))
    out = out or Path("checkpoints") / f"{sources.name}-compare"
    if plot is not None:
        require_matplotlib()  # an explicit --plot that cannot be drawn fails now, not after the training budget
    results = compare_cells(sources, [c.strip() for c in cells.split(",")], model, config, out,
                            sample_length=sample_length, progress=False if quiet or as_json else None,
                            equal_params=equal_params, auto_dropout=auto)
    held = held_equal(config, budget, equal_params, auto)
    sizes = f"about {equal_params:,} parameters" if equal_params > 0 else "same sizes"
    title = f"{', '.join(r.cell for r in results)} on {sources.name}: same {budget}, {sizes}, seed {seed}"
    curves = _curves([r.run_dir for r in results], plot or out / "curves.png", title, explicit=plot is not None)
    if as_json:
        print(json.dumps([{**asdict(r), "run_dir": str(r.run_dir), "best_val_loss": finite(r.best_val_loss),
                           "best_val_bpc": finite(r.best_val_bpc), "held_equal": held} for r in results],
                         ensure_ascii=False))
        return
    if not quiet:
        console().print(_results_table(results))
        sys.stderr.write(f"held equal: {held}\n")
        if curves:
            sys.stderr.write(f"loss curves: {curves}\n")
    for r in results:
        sys.stdout.write(f"----- {r.cell} -----\n{r.sample}\n")


def held_equal(config: TrainConfig, budget: str, equal_params: int, auto_dropout: bool) -> str:
    """One line saying what every cell had alike."""
    window = f"batches of {config.batch_size} x {config.seq_len}"
    if budget == "steps":
        chars = config.max_steps * config.batch_size * config.seq_len
        what = f"{config.max_steps:,} steps of {window} ({chars:,} chars)"
    elif budget == "time":
        what = f"{config.max_time:g} s of training ({window}; steps differ by cell and machine)"
    else:
        what = f"training until {config.patience} evaluations bring no better validation loss (at most " \
               f"{config.max_steps:,} steps of {window})"
    size = f"about {equal_params:,} parameters" if equal_params > 0 else "the same sizes"
    drop = "dropout by the training recipe" if auto_dropout else "the same dropout"
    return f"{what}, {size}, seed {config.seed}, {drop}"


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
    # No vertical rules: ten columns fit a terminal of 80 (bits per character are in --json).
    table = Table(title="Cell comparison", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                  collapse_padding=True, pad_edge=False)
    for name in ("cell", "hidden", "params", "drop", "steps", "chars", "val loss", "time s", "stop"):
        table.add_column(name, justify="left" if name in ("cell", "stop") else "right")
    for r in results:
        table.add_row(r.cell, str(r.hidden_size), f"{r.parameters:,}", f"{r.dropout:g}", f"{r.steps:,}",
                      f"{r.chars_seen:,}", f"{r.best_val_loss:.4f}", f"{r.elapsed:.1f}", r.stop_reason)
    return table


def plot(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders holding metrics.jsonl.", show_default=False),
    out: Path = typer.Option(Path("curves.png"), help="PNG file to write."),
) -> None:
    """Plot training and validation loss against steps and wall time."""
    written = plot_runs(list(run_dirs), out)
    sys.stderr.write(f"wrote {written}\n")
