"""PNG plots: learning curves from run folders' metrics.jsonl, and gradient-flow curves from reports.

It reads what train() logged or what gradflow measured, and never touches checkpoints or models.
`*_figure` functions build a matplotlib Figure (inspectable, nothing written); `save_png` writes one.
matplotlib (the `plot` extra) is imported only when a figure is built, so `import chargen` stays light.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import ChargenError

# Works for every way of installing chargen, a clone's `pip install -e .` included.
PLOT_HINT = "pip install matplotlib"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The evaluation records of a run, one dict per line of `run_dir/metrics.jsonl`, in file order.

    A torn last line (no newline: a run killed or out of disk space as it wrote it) is left out.
    Raises ChargenError if the folder or the file is missing, or a line is not a JSON object.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ChargenError(f"run folder {run_dir} does not exist", "pass a folder that chargen train wrote")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ChargenError(f"{path} does not exist: {run_dir} holds no training metrics",
                           "pass a folder that chargen train wrote")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):  # a last line torn by a run killed or out of space mid-write
                    break
                raise ChargenError(f"{path} line {n} is not valid JSON ({e.msg})",
                                   "the file may be damaged; remove the broken line") from None
            if not isinstance(record, dict):
                raise ChargenError(f"{path} line {n} is not a JSON object", "the file may be damaged")
            records.append(record)
    return records


def _series(records: list[dict], x: str, y: str) -> tuple[list[float], list[float]]:
    # A failed evaluation is logged as null (NaN is not JSON): leave those points out.
    pairs = [(r[x], r[y]) for r in records if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def require_matplotlib() -> None:
    """Raise ChargenError, with PLOT_HINT, if matplotlib cannot be imported; otherwise do nothing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ChargenError("plotting needs matplotlib, which is not installed", PLOT_HINT) from None


def _figure(width: float, height: float):
    # A bare Figure, not pyplot: no global backend or figure registry, so nothing to close and no display needed.
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def runs_figure(runs: list[tuple[str, list[dict]]], title: str | None = None):
    """A 1200 x 450 px Figure of (name, metrics records) pairs: training (dashed) and validation
    (solid, dotted markers) loss in nats per character against step (left axes) and against wall
    time in seconds (right axes, with the legend), one colour per run, labelled "<name> train" and
    "<name> val". Records whose value is missing or null are left out. Raises ChargenError without matplotlib."""
    fig = _figure(12, 4.5)
    axes = fig.subplots(1, 2, sharey=True)
    for i, (name, records) in enumerate(runs):
        colour = f"C{i % 10}"
        for ax, x, unit in ((axes[0], "step", "step"), (axes[1], "elapsed", "wall time (s)")):
            ax.plot(*_series(records, x, "train_loss"), color=colour, linestyle="--", alpha=0.7, label=f"{name} train")
            ax.plot(*_series(records, x, "val_loss"), color=colour, marker=".", label=f"{name} val")
            ax.set_xlabel(unit)
            ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("loss (nats/char)")
    axes[0].set_title("loss by step")
    axes[1].set_title("loss by wall time")
    axes[1].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_png(fig, out: str | Path, flag: str = "--out") -> Path:
    """Write `fig` to `out` as a PNG at the figure's own size and 100 dpi; returns `out` as a Path.
    Raises ChargenError naming `flag` if the file cannot be written."""
    try:
        fig.savefig(Path(out), format="png", dpi=100)
    except OSError as e:
        raise ChargenError(f"cannot write {out}: {e.strerror}", f"choose a writable {flag} path") from None
    return Path(out)


def plot_runs(run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
    """Write runs_figure of the run folders (each labelled by its folder name) to the PNG `out`.
    Returns `out`. Every folder is read before anything is drawn or written; raises ChargenError
    for no folders, a missing or damaged run, a missing matplotlib or an unwritable `out`."""
    if not run_dirs:
        raise ChargenError("no run folders to plot", "pass one or more run folders")
    runs = [(Path(d).name, read_metrics(d)) for d in run_dirs]
    return save_png(runs_figure(runs, title), out)


def _positive(lags: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    # A log axis cannot show 0 (a gradient that underflowed float32) or inf/nan: leave those points out.
    pairs = [(k, v) for k, v in zip(lags, values) if v > 0 and math.isfinite(v)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _label(report: dict) -> str:
    label = f"{report['cell']} {report['num_layers']}x{report['hidden_size']}"
    return label if report.get("recurrent_scale", 1.0) == 1.0 else f"{label}, W_hh x{report['recurrent_scale']:g}"


def _gap(lags: list[int], norms: list[float]) -> str:
    """Why a curve stops early, for its legend entry: the first lag whose norm a log axis cannot show."""
    for k, n in zip(lags, norms):
        if n == 0:
            return f" (0 from k={k}: underflow)"
        if not math.isfinite(n):
            return f" ({n:g} from k={k}: overflow)"
    return ""


def _decade_ticks(ax) -> None:
    """Major ticks every 1, 2, 5, 10, ... decades, on multiples of that stride (10^0, 10^-10, 10^-20
    rather than matplotlib's 10^-2, 10^-7, ...), at most 9 of them, so a curve over 40 decades reads
    at a glance. The y limits stay as they were."""
    from matplotlib.ticker import FixedLocator, NullLocator

    low, high = ax.get_ylim()
    first, last = math.log10(low), math.log10(high)
    stride = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500)
                  if math.floor(last / s) - math.ceil(first / s) + 1 <= 9)  # at most 9 labelled ticks
    exponents = range(math.ceil(first / stride) * stride, math.floor(last) + 1, stride)
    if len(exponents) < 2:
        return  # within a decade or two matplotlib's own ticks (2x10^-1, 5x10^-1, ...) read better
    ax.yaxis.set_major_locator(FixedLocator([10.0 ** e for e in exponents]))
    if stride > 1:
        ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylim(low, high)


def gradflow_figure(reports: list[dict], title: str = "Gradient flow"):
    """A 1200 x 480 px Figure of gradient_flow_report dicts, one colour per report, log y axes.

    Left axes: |dL_t/dh_(t-k)| relative to k = 0 against the lag k, and the report's threshold
    as a dotted grey line. Right axes: the absolute norms, solid, and (for reports with a `clip`
    part) the same after clipping, dashed: a parallel shift down, the shape unchanged. Points a
    log axis cannot show (0 from underflow, inf or nan) are left out, and the legend entry says
    from which lag. Raises ChargenError for no reports or a missing matplotlib."""
    if not reports:
        raise ChargenError("no gradient-flow reports to plot")
    fig = _figure(12, 4.8)
    rel, ab = fig.subplots(1, 2)
    for i, r in enumerate(reports):
        colour, first, name = f"C{i % 10}", r["norms"][0], _label(r) + _gap(r["lags"], r["norms"])
        if first > 0:
            rel.plot(*_positive(r["lags"], [n / first for n in r["norms"]]), color=colour, label=name)
        ab.plot(*_positive(r["lags"], r["norms"]), color=colour, label=name)
        if r.get("clip"):
            ab.plot(*_positive(r["lags"], r["clip"]["norms"]), color=colour, linestyle="--",
                    label=f"{_label(r)}, clipped at {r['clip']['max_norm']:g}")
    threshold = reports[0]["threshold"]
    rel.axhline(threshold, color="grey", linestyle=":", label=f"threshold {threshold:g}")
    rel.set_ylabel("|dL_t / dh_(t-k)|  /  |dL_t / dh_t|")
    rel.set_title("relative to lag 0")
    ab.set_ylabel("|dL_t / dh_(t-k)|")
    ab.set_title("absolute: before (solid) and after clipping (dashed)")
    for ax in (rel, ab):
        ax.set_yscale("log")
        _decade_ticks(ax)
        ax.set_xlabel("lag k (steps back)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gradflow(reports: list[dict], out: Path, title: str = "Gradient flow") -> Path:
    """Write gradflow_figure(reports, title) to the PNG `out`; returns `out`. Raises ChargenError
    for no reports, a missing matplotlib, or an unwritable `out` (the hint names --plot)."""
    return save_png(gradflow_figure(reports, title), out, "--plot")
