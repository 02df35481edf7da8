"""The command line's `chargen gradflow`: how far back the gradient reaches, for a checkpoint or fresh models.

It only parses, calls study.gradflow and study.plot, and renders: tables and notes to stderr, JSON alone on stdout.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..data.text import read_raw, read_text
from ..data.vocab import Vocab
from ..device import resolve_device
from ..errors import ChargenError
from ..model.charrnn import ModelConfig
from ..study.gradflow import fresh_model, gradient_flow_report
from ..study.passage import NAME as PASSAGE_NAME
from ..study.passage import PASSAGE
from ..study.plot import plot_gradflow
from ..config import TrainConfig
from ..modelfile.load import load_model
from .common import checkpoint_path, console, field_default
from .options import Json, StepDevice
from .terminal import warn_unknown

SHOWN_LAGS = (0, 1, 2, 3, 5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500)


def _fresh_default(cls, name: str) -> str:
    return f"With --fresh (default {field_default(cls, name)})."


def gradflow(
    checkpoint: Optional[Path] = typer.Argument(None, help="A .pt file (default: newest best.pt); not with --fresh.",
                                                show_default=False),
    fresh: bool = typer.Option(False, "--fresh", help="Measure untrained models built on the text's vocabulary."),
    cells: Optional[str] = typer.Option(None, help="With --fresh: comma-separated cells (default rnn,lstm,gru)."),
    num_layers: Optional[int] = typer.Option(None, "--num-layers", "--layers",
                                             help=_fresh_default(ModelConfig, "num_layers")),
    hidden_size: Optional[int] = typer.Option(None, help=_fresh_default(ModelConfig, "hidden_size")),
    embedding_dim: Optional[int] = typer.Option(None, help=_fresh_default(ModelConfig, "embedding_dim")),
    seed: Optional[int] = typer.Option(None, help=f"Initialisation seed. {_fresh_default(TrainConfig, 'seed')}"),
    text: Optional[Path] = typer.Option(None, help="Text to read, UTF-8 (any file for a bytes model; default: the "
                                                   "--prime string, else a "
                                                   "built-in English passage of 557 characters)."),
    prime: str = typer.Option("", help="Text to read when --text is not given."),
    offset: int = typer.Option(0, help="Character of the text to start at."),
    max_lag: int = typer.Option(50, help="How many steps back to measure."),
    threshold: float = typer.Option(1e-3, help="Horizon: first lag whose norm is below threshold x lag-0 norm."),
    recurrent_scale: float = typer.Option(1.0, help="Multiply every W_hh by this first (3: a fresh RNN explodes)."),
    grad_clip: float = typer.Option(field_default(TrainConfig, "grad_clip"), "--grad-clip", "--clip",
                                    help="Clip the whole gradient to this L2 norm, as training does, and report it."),
    plot: Optional[Path] = typer.Option(None, help="Write the curves, log scale, to this PNG."),
    device: StepDevice = "auto",
    as_json: Json = False,
) -> None:
    """How far back the gradient reaches: |d loss_t / d h_(t-k)| for k = 0..max-lag, per model.

    Reads --text, else --prime, else a built-in English passage (a checkpoint does not record
    its corpus). Characters the model never learned are read as its unknown symbol U+FFFD,
    named in one warning on stderr.
    """
    if max_lag < 0 or offset < 0:
        raise ChargenError("--max-lag and --offset must be 0 or more", "try --max-lag 50")
    options = dict(cells=cells, num_layers=num_layers, hidden_size=hidden_size, embedding_dim=embedding_dim, seed=seed)
    models, vocab, origin = _models(checkpoint, fresh, options, text, prime, as_json)
    source, read = _source(text, prime, vocab)
    excerpt = _excerpt(source, offset, max_lag)
    if read == "built-in" and not as_json:
        sys.stderr.write(f"reading {PASSAGE_NAME}; pass --text FILE to read your own\n")
    warn_unknown(vocab, excerpt)
    origin["text"] = read
    ids = vocab.encode(excerpt)[: max_lag + 2]  # (max_lag + 2,): a bytes model's first bytes of the excerpt
    dev = resolve_device(device, mps=False)
    reports = [{**gradient_flow_report(m, ids, max_lag, threshold=threshold, device=dev, max_norm=grad_clip,
                                      recurrent_scale=recurrent_scale), **origin} for m in models]
    name = origin["checkpoint"] or f"fresh models, seed {origin['seed']}"
    title = f"Gradient flow, {name}"
    if plot is not None:
        plot_gradflow(reports, plot, title=f"{title}, offset {offset}")
    if as_json:
        print(json.dumps(_json_safe(reports)))
        return
    console().print(_table(reports, title, max_lag))
    if any(n == 0 for r in reports for n in r["norms"]):
        sys.stderr.write("0: the gradient underflowed float32 (below about 1e-45)\n")
    sys.stderr.write("clipping multiplies the whole gradient by one factor (cosine 1): it bounds the step, "
                     "not the profile over lags\n")
    if plot is not None:
        sys.stderr.write(f"wrote {plot}\n")


def _source(text: Optional[Path], prime: str, vocab: Vocab | None) -> tuple[str, str]:
    """The text to read and where it came from: the --text file, the --prime string, or the built-in
    passage. A bytes model reads any --text file (a byte that is not UTF-8 carried as surrogateescape does)."""
    if text is not None:
        if vocab is not None and vocab.kind == "bytes":
            return read_raw(text, what="text").decode("utf-8", "surrogateescape"), str(text)
        return read_text(text, what="text"), str(text)
    if prime:
        return prime, "--prime"
    return PASSAGE, "built-in"


def _excerpt(source: str, offset: int, max_lag: int) -> str:
    """The max_lag + 2 characters from `offset` on; a ChargenError in the user's words if there are fewer."""
    need = max_lag + 2
    excerpt = source[offset: offset + need]
    if len(excerpt) < need:
        where = f" from --offset {offset}" if offset else ""
        raise ChargenError(f"the text is too short for --max-lag {max_lag}: it has {len(excerpt)} characters{where} "
                           f"and {need} are needed", "pass a longer --text or a smaller --max-lag")
    return excerpt


def _models(checkpoint: Optional[Path], fresh: bool, options: dict, text: Optional[Path], prime: str, quiet: bool):
    """The models to measure, the vocabulary to encode the text with, and where they came from."""
    given = [f"--{k.replace('_', '-')}" for k, v in options.items() if v is not None]
    if fresh and checkpoint is not None:
        raise ChargenError("a checkpoint holds one trained model and --fresh builds new ones",
                           "pass a checkpoint or --fresh, not both")
    if not fresh:
        if given:
            raise ChargenError(f"{', '.join(given)} only apply to --fresh models; "
                               "a checkpoint has its own cell and sizes",
                               "add --fresh, or drop them to measure the checkpoint")
        path = checkpoint_path(checkpoint, quiet)
        model, vocab, _ = load_model(path)
        return [model], vocab, {"checkpoint": str(path), "seed": None}
    vocab = Vocab.from_text(_source(text, prime, None)[0])
    seed = field_default(TrainConfig, "seed") if options["seed"] is None else options["seed"]
    sizes = {k: options[k] for k in ("num_layers", "hidden_size", "embedding_dim") if options[k] is not None}
    names = [c.strip() for c in (options["cells"] or "rnn,lstm,gru").split(",") if c.strip()]
    if not names:
        raise ChargenError("--cells names no cell", "try --cells rnn,lstm,gru")
    models = [fresh_model(ModelConfig(vocab_size=len(vocab), cell=c, **sizes), seed) for c in names]
    return models, vocab, {"checkpoint": None, "seed": seed}


def _sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.2e}"


def _ratio(norms: list[float]) -> str:
    return _sci(norms[-1] / norms[0]) if norms[0] > 0 else "-"


def _table(reports: list[dict], title: str, max_lag: int) -> Table:
    """One column per model: norms relative to lag 0 at a few lags, then the horizon and clipping rows."""
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("lag k  (norm / k=0 norm)")
    for r in reports:
        scaled = "" if r["recurrent_scale"] == 1 else f" W_hh x{r['recurrent_scale']:g}"
        table.add_column(f"{r['cell']} {r['num_layers']}x{r['hidden_size']}{scaled}", justify="right")
    shown = [k for k in range(max_lag + 1) if k in SHOWN_LAGS or k == max_lag]
    for i, k in enumerate(shown):
        table.add_row(str(k), *[_sci(r["norms"][k] / r["norms"][0]) if r["norms"][0] > 0 else "-" for r in reports],
                      end_section=i == len(shown) - 1)
    threshold = reports[0]["threshold"]
    clips = [r["clip"] for r in reports]
    rows = [
        ("|dL/dh(t)| at k=0", [f"{r['norms'][0]:.3e}" for r in reports]),
        (f"horizon (< {threshold:g} x k=0)", [str(r["horizon"]) if r["horizon"] is not None else f"> {max_lag}"
                                              for r in reports]),
        (f"k={max_lag} / k=0", [_ratio(r["norms"]) for r in reports]),
        ("grad norm, all parameters", [f"{c['total_norm']:.3e}" for c in clips]),
        (f"after clipping at {clips[0]['max_norm']:g}", [f"{c['clipped_norm']:.3e}" for c in clips]),
        ("scale applied", [f"{c['scale']:.3e}" for c in clips]),
        ("cosine before/after", [f"{c['cosine']:.6f}" for c in clips]),
        (f"k={max_lag} / k=0 after clipping", [_ratio(c["norms"]) for c in clips]),
    ]
    for label, cells in rows:
        table.add_row(label, *cells)
    return table


def _json_safe(value):
    """NaN and infinity are not JSON: write them as null (a norm that overflowed float32, a 0/0 ratio)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
