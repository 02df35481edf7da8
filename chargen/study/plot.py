"""PNG plots: learning curves from run folders' metrics.jsonl, and gradient-flow curves from reports.

It reads what train() logged or what gradflow measured, and never touches checkpoints or models.
matplotlib is an optional extra (`pip install 'chargen[plot]'`), imported only when a plot is drawn.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import ChargenError

PLOT_HINT = "pip install 'chargen[plot]'"


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The evaluation records of a run, one dict per line of `run_dir/metrics.jsonl`, in file order.

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


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ChargenError("plotting needs matplotlib", PLOT_HINT) from None
    matplotlib.use("Agg")  # draw to a file; no display needed, works headless and in CI
    import matplotlib.pyplot as plt

    return plt


def plot_runs(run_dirs: list[Path], out: Path) -> Path:
    """Write one PNG to `out`: training (dashed) and validation (solid) loss in nats per character
    against step (left) and against wall time in seconds (right), one colour per run, labelled
    by folder name. Returns `out`. Raises ChargenError for a missing run or matplotlib."""
    if not run_dirs:
        raise ChargenError("no run folders to plot", "pass one or more run folders")
    runs = [(Path(d).name, read_metrics(d)) for d in run_dirs]  # every folder checked before drawing
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    try:
        for i, (name, records) in enumerate(runs):
            colour = f"C{i % 10}"
            for ax, x, unit in ((axes[0], "step", "step"), (axes[1], "elapsed", "wall time (s)")):
                ax.plot(*_series(records, x, "train_loss"), color=colour, linestyle="--", alpha=0.7,
                        label=f"{name} train")
                ax.plot(*_series(records, x, "val_loss"), color=colour, marker=".", label=f"{name} val")
                ax.set_xlabel(unit)
                ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("loss (nats/char)")
        axes[0].set_title("loss by step")
        axes[1].set_title("loss by wall time")
        axes[1].legend(fontsize="small")
        fig.tight_layout()
        _save(fig, out)
    finally:
        plt.close(fig)
    return Path(out)


def _save(fig, out: Path, flag: str = "--out") -> None:
    try:
        fig.savefig(Path(out), format="png", dpi=100)
    except OSError as e:
        raise ChargenError(f"cannot write {out}: {e.strerror}", f"choose a writable {flag} path") from None


def _positive(lags: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    # A log axis cannot show 0 (a gradient that underflowed float32) or inf/nan: leave those points out.
    pairs = [(k, v) for k, v in zip(lags, values) if v > 0 and math.isfinite(v)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _label(report: dict) -> str:
    label = f"{report['cell']} {report['num_layers']}x{report['hidden_size']}"
    return label if report.get("recurrent_scale", 1.0) == 1.0 else f"{label}, W_hh x{report['recurrent_scale']:g}"


def plot_gradflow(reports: list[dict], out: Path, title: str = "Gradient flow") -> Path:
    """Write one PNG to `out` from gradient_flow_report dicts, one colour per report, log y axes.

    Left: |dL_t/dh_(t-k)| relative to k = 0 against the lag k, with the horizon threshold
    dotted. Right: the absolute norms, solid, and (for reports with a `clip` part) the same
    after clipping, dashed: a parallel shift down, the shape unchanged. Zero norms
    (underflow) are left out. Returns `out`; raises ChargenError without matplotlib."""
    if not reports:
        raise ChargenError("no gradient-flow reports to plot")
    plt = _pyplot()
    fig, (rel, ab) = plt.subplots(1, 2, figsize=(12, 4.8))
    try:
        for i, r in enumerate(reports):
            colour, first = f"C{i % 10}", r["norms"][0]
            if first > 0:
                rel.plot(*_positive(r["lags"], [n / first for n in r["norms"]]), color=colour, label=_label(r))
            ab.plot(*_positive(r["lags"], r["norms"]), color=colour, label=_label(r))
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
            ax.set_xlabel("lag k (steps back)")
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle(title)
        fig.tight_layout()
        _save(fig, out, "--plot")
    finally:
        plt.close(fig)
    return Path(out)
