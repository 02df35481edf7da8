"""The command line's `chargen cells`: which hidden units track features of a text.

It parses, calls study.units and study.page, and renders: tables and the one-unit view on
stderr, JSON alone on stdout.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import torch
import typer
from rich import box
from rich.table import Table
from rich.text import Text

from ..data.text import read_raw, read_text
from ..data.vocab import Vocab
from ..errors import ChargenError
from ..study.page import colour, label, page_units, render_page, save_html, scaled
from ..study.units import (HIGH, LOW, MIN_RUNS, MIN_SUPPORT, Activations, FeatureMatch, Match, Saturation,
                           find_units, gate_saturation, record)
from ..modelfile.load import load_model
from .common import checkpoint_path, console, finite
from .options import Json
from .terminal import warn_unknown_chars


def cells(
    checkpoint: Optional[Path] = typer.Argument(None, help="A .pt file (default: newest best.pt).", show_default=False),
    text: Path = typer.Option(..., help="Text to read: UTF-8, or any file for a bytes model.", show_default=False),
    offset: int = typer.Option(0, help="Character of --text to start at."),
    max_chars: int = typer.Option(5000, help="Characters to read from --offset on (keeps the page small)."),
    out: Optional[Path] = typer.Option(None,
                                       help="HTML page to write (default cells.html; with --unit only if given)."),
    unit: Optional[int] = typer.Option(None, help="Show this unit in the terminal, coloured per character."),
    layer: Optional[int] = typer.Option(None, help="Layer of --unit, 0 = next to the embedding (default: top)."),
    state: str = typer.Option("h", help="State of --unit: h, or c (LSTM cell state)."),
    top_k: int = typer.Option(3, help="Units listed per feature."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No tables or messages (the --unit view still shows)."),
    as_json: Json = False,
) -> None:
    """Colour a text by what single hidden units do, find the units that track quotes, line position,
    brackets, line starts and speaker names, and measure gate saturation; writes an HTML page."""
    if offset < 0 or max_chars < 1 or top_k < 1:
        raise ChargenError("--offset must be 0 or more, --max-chars and --top-k 1 or more", "try --max-chars 5000")
    if layer is not None and unit is None:
        raise ChargenError("--layer selects the layer of --unit", "add --unit N")
    path = checkpoint_path(checkpoint, quiet or as_json)
    model, vocab, _ = load_model(path)
    excerpt = _read(text, offset, max_chars, vocab)
    unknown = vocab.unknown(excerpt)  # read as the unknown symbol; the page shows them as they are
    if not quiet:
        warn_unknown_chars(unknown)
    torch.set_num_threads(1)  # (1, H) steps one character at a time: a second thread only adds hand-offs
    acts = record(model, vocab, excerpt)
    features = find_units(acts, top_k=top_k)
    saturation = gate_saturation(acts)
    chosen = None
    if unit is not None:
        layer = model.config.num_layers - 1 if layer is None else layer
        acts.unit(state, layer, unit)  # raises with the valid range
        chosen = Match(state, layer, unit, math.nan)
    page = out if out is not None or unit is not None else Path("cells.html")
    if page is not None:
        meta = {"checkpoint": str(path), "model": f"{model.config.cell} {model.config.num_layers} x "
                f"{model.config.hidden_size}", "text": str(text), "offset": offset, "characters": len(excerpt),
                "read as U+FFFD": " ".join(unknown) or "none"}
        save_html(page, render_page(acts, features, saturation, page_units(features, chosen), meta))
    if as_json:
        print(json.dumps(_report(path, acts, offset, unknown, features, saturation, page), ensure_ascii=False))
    elif not quiet:
        console().print(_feature_table(features))
        console().print(_saturation_table(saturation, model.config.cell))
        if page is not None:
            sys.stderr.write(f"wrote {page}\n")
    if chosen is not None:
        _show_unit(acts, chosen)


def _read(text: Path, offset: int, max_chars: int, vocab: Vocab) -> str:
    """The --max-chars characters of the file from --offset on. A bytes model reads any file: a byte
    that is not UTF-8 is carried as a lone surrogate (surrogateescape), which it reads as that byte."""
    source = read_text(text, what="text") if vocab.kind == "chars" else \
        read_raw(text, what="text").decode("utf-8", "surrogateescape")
    if offset >= len(source):
        raise ChargenError(f"--offset {offset} is past the end of {text} ({len(source)} characters)",
                           f"use an --offset below {len(source)}")
    return source[offset: offset + max_chars]


def _match(m: Match) -> dict:
    return {"state": m.state, "layer": m.layer, "unit": m.unit, "r": finite(m.r)}


def _report(path: Path, acts: Activations, offset: int, unknown: list[str], features: list[FeatureMatch],
            saturation: list[Saturation], page: Path | None) -> dict:
    return {"checkpoint": str(path), "cell": acts.cell, "offset": offset, "chars": len(acts.text),
            "unknown": unknown, "page": None if page is None else str(page),
            "features": [{"name": f.name, "description": f.description, "support": f.support, "runs": f.runs,
                          "usable": f.usable, "r": None if f.best is None else finite(f.best.r),
                          "best": [_match(m) for m in f.matches]} for f in features],
            "saturation": [{k: (finite(v) if isinstance(v, float) else v) for k, v in s.summary().items()}
                           for s in saturation]}


def _feature_table(features: list[FeatureMatch]) -> Table:
    table = Table(title="Units that track a feature", title_justify="left", box=box.SIMPLE_HEAD,
                  caption="chars: characters showing the feature, in how many stretches; r: Pearson "
                          "correlation; L1 h[7]: layer 1 (0 = bottom), state h, unit 7", caption_justify="left")
    for name in ("feature", "chars", "best unit", "r", "runners-up"):
        table.add_column(name, justify="right" if name in ("chars", "r") else "left")
    for f in features:
        shown = f"{f.support} in {f.runs}"
        if f.best is None:
            table.add_row(f.name, shown, "absent", "-", f"needs {MIN_SUPPORT} in {MIN_RUNS}")
            continue
        others = "\n".join(f"{_short(m)} {m.r:+.2f}" for m in f.matches[1:])
        table.add_row(f.name, shown, _short(f.best), f"{f.best.r:+.3f}", others)
    return table


def _short(m: Match) -> str:
    return f"L{m.layer} {m.state}[{m.unit}]"


def _saturation_table(saturation: list[Saturation], cell: str) -> Table:
    table = Table(title=f"Gate saturation, {cell}", title_justify="left", box=box.SIMPLE_HEAD,
                  caption=f"time: mean share of characters a unit's gate is left (< {LOW}) or right (> {HIGH}) "
                          "saturated; units: share of units saturated on that side over half the time, "
                          "or under 10% of the time on both sides together", caption_justify="left")
    for name in ("layer", "gate", "time left", "time right", "units left", "units right", "units rarely"):
        table.add_column(name, justify="left" if name == "gate" else "right")
    for s in saturation:
        d = s.summary()
        table.add_row(str(d["layer"]), d["gate"], *(f"{d[k]:.1%}" for k in (
            "mean_left", "mean_right", "units_mostly_left", "units_mostly_right", "units_rarely_saturated")))
    if not saturation:
        table.add_row("-", f"a {cell} has no gates", *[""] * 5)
    return table


def _show_unit(acts: Activations, m: Match) -> None:
    """The text with each character's background set by the unit's value (blue < 0 < red), on stderr."""
    values, scale = scaled(acts.unit(m.state, m.layer, m.unit))  # (T,) in [-1, 1]
    view = Text(f"{label(m)}: blue -{scale:.2f} .. white 0 .. red +{scale:.2f}\n")
    for ch, v in zip(acts.text, values.tolist()):
        style = f"{'white' if abs(v) > 0.6 else 'black'} on {colour(v)}"
        view.append("\u21b5" if ch == "\n" else ch, style=style)
        if ch == "\n":
            view.append("\n")
    console().print(view, soft_wrap=True)

