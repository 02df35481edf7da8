"""Plots: metrics parsing, what the learning-curve and gradient-flow figures hold (their lines, labels
and titles, read back from the Figure), what their PNGs look like decoded, and the install hint."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread
from matplotlib.text import Text

from chargen.errors import ChargenError
from chargen.study.plot import (
    PLOT_HINT,
    _positive,
    gradflow_figure,
    plot_gradflow,
    plot_runs,
    read_metrics,
    runs_figure,
    save_png,
)

BLUE, ORANGE, GREEN = to_rgb("#1f77b4"), to_rgb("#ff7f0e"), to_rgb("#2ca02c")  # matplotlib's C0, C1, C2


def _write_run(path, n=12, scale=1.0, null_val_at=None):
    """A metrics.jsonl of n evaluations: step 10 i, elapsed 0.5 i scale, train 3.2/i + 1, val 3/i + 1.2 (x scale)."""
    path.mkdir(parents=True)
    lines = []
    for i in range(1, n + 1):
        val = None if i == null_val_at else scale * (3.0 / i + 1.2)
        lines.append(json.dumps({"step": 10 * i, "epoch": 0, "elapsed": 0.5 * i * scale, "lr": 1e-3,
                                 "train_loss": scale * (3.2 / i + 1.0), "grad_norm": 0.5,
                                 "val_loss": val, "val_bpc": None if val is None else val / 0.693,
                                 "chars_per_s": 1000, "best": True}))
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lines(ax) -> dict:
    """label -> (x, y, linestyle, colour) of every line on the axes, read back from matplotlib."""
    return {ln.get_label(): (list(ln.get_xdata()), list(ln.get_ydata()), ln.get_linestyle(), to_rgb(ln.get_color()))
            for ln in ax.get_lines()}


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _pixels_near(image: np.ndarray, colour, tol: float = 0.03) -> int:
    """How many pixels of an (H, W, 3|4) image are within `tol` of an RGB colour in every channel."""
    return int((np.abs(image[..., :3] - np.array(colour)) < tol).all(axis=-1).sum())


def test_read_metrics_returns_records_in_order(tmp_path):
    run = _write_run(tmp_path / "a", n=5)
    records = read_metrics(run)
    assert [r["step"] for r in records] == [10, 20, 30, 40, 50]
    assert records[0]["val_loss"] == pytest.approx(4.2)


def test_read_metrics_missing_folder_and_file_and_bad_json_give_distinct_messages(tmp_path):
    """Each way a run folder can be unreadable names its own cause, not one generic error."""
    with pytest.raises(ChargenError, match="run folder .* does not exist"):
        read_metrics(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChargenError, match="metrics.jsonl does not exist"):
        read_metrics(tmp_path / "empty")
    bad = _write_run(tmp_path / "bad", n=2)
    with open(bad / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 30, "val_lo\n')
    with pytest.raises(ChargenError, match="line 3 is not valid JSON"):
        read_metrics(bad)


def test_runs_figure_draws_every_logged_point_of_every_run(tmp_path):
    """Guards against curves that plot the wrong field, the wrong x axis, a null as a point, or one
    run in another's colour: each run gets a dashed train and a solid val line in its own colour,
    by step on the left and by wall time on the right, with the values of the file."""
    a = read_metrics(_write_run(tmp_path / "gru", n=5, null_val_at=4))
    b = read_metrics(_write_run(tmp_path / "lstm", n=3, scale=2.0))
    fig = runs_figure([("gru", a), ("lstm", b)], title="two cells")
    by_step, by_time = fig.axes
    lines = _lines(by_step)
    assert list(lines) == ["gru train", "gru val", "lstm train", "lstm val"]
    assert lines["gru train"][:3] == ([10, 20, 30, 40, 50], pytest.approx([4.2, 2.6, 3.2 / 3 + 1, 1.8, 1.64]), "--")
    assert lines["gru val"][:3] == ([10, 20, 30, 50], pytest.approx([4.2, 2.7, 2.2, 1.8]), "-")  # step 40 was null
    assert lines["lstm val"][:2] == ([10, 20, 30], pytest.approx([8.4, 5.4, 4.4]))
    assert lines["gru train"][3] == lines["gru val"][3] != lines["lstm val"][3] == lines["lstm train"][3]
    time_lines = _lines(by_time)
    assert time_lines["gru val"][0] == pytest.approx([0.5, 1.0, 1.5, 2.5])
    assert time_lines["lstm train"][0] == pytest.approx([1.0, 2.0, 3.0])
    assert time_lines["lstm train"][1] == lines["lstm train"][1]
    assert (by_step.get_xlabel(), by_time.get_xlabel()) == ("step", "wall time (s)")
    assert by_step.get_ylabel() == "loss (nats/char)"
    assert (by_step.get_title(), by_time.get_title()) == ("loss by step", "loss by wall time")
    assert _legend(by_time) == ["gru train", "gru val", "lstm train", "lstm val"]
    assert "two cells" in [t.get_text() for t in fig.findobj(Text)]


def test_plot_runs_png_is_the_figure_size_and_shows_each_run_in_its_colour(tmp_path):
    """Guards against a blank or clipped picture: the decoded PNG is 1200 x 450, the plot areas are
    not empty, and each run's colour is drawn (C0 blue and C1 orange, no green for a third run)."""
    a = _write_run(tmp_path / "shakespeare-gru", null_val_at=4)
    b = _write_run(tmp_path / "shakespeare-lstm", scale=1.3)
    out = plot_runs([a, b], tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    image = imread(out)  # (H, W, 4) floats in [0, 1]
    assert image.shape[:2] == (450, 1200)
    left, right = image[60:380, 80:600, :3], image[60:380, 660:1180, :3]  # inside the two axes
    for area in (left, right):
        assert (area.min(axis=-1) < 0.9).mean() > 0.01  # lines, not only white
    assert _pixels_near(left, BLUE) > 200 and _pixels_near(left, ORANGE) > 200
    assert _pixels_near(image, GREEN) == 0


def test_plot_checks_every_run_before_drawing(tmp_path):
    a = _write_run(tmp_path / "a")
    with pytest.raises(ChargenError, match="does not exist"):
        plot_runs([a, tmp_path / "missing"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ChargenError, match="no run folders"):
        plot_runs([], tmp_path / "x.png")


def test_save_png_error_names_the_option(tmp_path):
    """An unwritable path is a one-line error whose hint names the option the user gave."""
    fig = runs_figure([("a", read_metrics(_write_run(tmp_path / "a")))])
    with pytest.raises(ChargenError, match="cannot write") as info:
        save_png(fig, tmp_path / "no" / "c.png")
    assert info.value.hint == "choose a writable --out path"


def test_missing_matplotlib_gives_a_hint_that_works_for_a_clone_install(tmp_path, monkeypatch):
    """Guards against the old dead end: the hint was `pip install 'chargen[plot]'`, but chargen is not on
    PyPI (it is installed from a clone), so that command fails. The hint must install matplotlib itself."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    a = _write_run(tmp_path / "a")
    with pytest.raises(ChargenError, match="plotting needs matplotlib") as info:
        plot_runs([a], tmp_path / "x.png")
    assert info.value.hint == "pip install matplotlib" == PLOT_HINT
    with pytest.raises(ChargenError, match="plotting needs matplotlib") as info:
        plot_gradflow([_report("rnn", [1.0, 0.5])], tmp_path / "g.png")
    assert info.value.hint == "pip install matplotlib" and not (tmp_path / "g.png").exists()
    assert not (tmp_path / "x.png").exists()


def test_importing_chargen_plot_does_not_import_matplotlib():
    """matplotlib is imported only when a figure is built, so `import chargen` and every other command stay fast."""
    code = "import sys, chargen, chargen.study.plot, chargen.study.compare; print('matplotlib' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "False"


def _report(cell, norms, scale=1.0, clip_scale=None):
    """A gradient_flow_report-shaped dict with the given norms (and a clip part scaled by clip_scale)."""
    clip = None if clip_scale is None else {"max_norm": 1.0, "norms": [clip_scale * n for n in norms]}
    return {"cell": cell, "num_layers": 2, "hidden_size": 6, "recurrent_scale": scale, "threshold": 1e-3,
            "lags": list(range(len(norms))), "norms": norms, "clip": clip}


def test_positive_keeps_only_what_a_log_axis_can_show():
    """Guards against log(0) from an underflowed norm, and inf or nan from an overflowed one, reaching the plot."""
    assert _positive([0, 1, 2, 3, 4], [1.0, 0.0, math.inf, 1e-300, math.nan]) == ([0, 3], [1.0, 1e-300])


def test_gradflow_figure_plots_relative_and_absolute_norms():
    """Guards against a relative panel not divided by the lag-0 norm, a clipped curve drawn solid or
    unscaled, points a log axis cannot show, or a legend that hides why a curve stops. Norms 4 x 0.5^k
    (k < 30, then underflow to 0) give relative 0.5^k; clipping at scale 0.1 gives 0.4 x 0.5^k."""
    halving = [4 * 0.5 ** k if k < 30 else 0.0 for k in range(40)]
    growing = [3.0 ** k if k < 35 else math.inf for k in range(40)]
    fig = gradflow_figure([_report("rnn", halving, clip_scale=0.1), _report("rnn", growing, scale=3.0),
                           _report("gru", [0.0] * 40)], title="Gradient flow, test")
    rel, ab = fig.axes
    r, a = _lines(rel), _lines(ab)
    halving_name, growing_name = "rnn 2x6 (0 from k=30: underflow)", "rnn 2x6, W_hh x3 (inf from k=35: overflow)"
    assert list(r) == [halving_name, growing_name, "threshold 0.001"]  # gru: lag-0 norm 0, nothing relative
    assert r[halving_name][0] == list(range(30)) and r[halving_name][1] == pytest.approx([0.5 ** k for k in range(30)])
    assert r[growing_name][1] == pytest.approx([3.0 ** k for k in range(35)])
    assert r["threshold 0.001"][1] == [1e-3, 1e-3] and r["threshold 0.001"][2] == ":"
    assert list(a) == [halving_name, "rnn 2x6, clipped at 1", growing_name, "gru 2x6 (0 from k=0: underflow)"]
    assert a[halving_name][1] == pytest.approx(halving[:30]) and a[halving_name][2] == "-"
    clipped = a["rnn 2x6, clipped at 1"]
    assert clipped[1] == pytest.approx([0.4 * 0.5 ** k for k in range(30)]) and clipped[2] == "--"
    assert clipped[3] == a[halving_name][3] == BLUE and a[growing_name][3] == ORANGE
    assert a["gru 2x6 (0 from k=0: underflow)"][0] == []
    assert rel.get_yscale() == ab.get_yscale() == "log"
    assert rel.get_xlabel() == ab.get_xlabel() == "lag k (steps back)"
    assert (rel.get_title(), ab.get_title()) == ("relative to lag 0",
                                                 "absolute: before (solid) and after clipping (dashed)")
    assert _legend(ab) == list(a)
    assert "Gradient flow, test" in [t.get_text() for t in fig.findobj(Text)]


def test_gradflow_log_ticks_sit_on_round_decades():
    """Guards against unreadable tick labels (10^-2, 10^-7, 10^-12 ...) on a curve spanning many decades:
    the labelled ticks are powers of ten whose exponents are multiples of one stride (1, 2, 5, 10, ...),
    at most 9 of them and at least 2 inside the visible range."""
    fig = gradflow_figure([_report("rnn", [0.6 ** k for k in range(200)])])
    for ax in fig.axes:
        low, high = ax.get_ylim()
        exponents = [round(math.log10(t)) for t in ax.get_yticks() if low <= t <= high]
        assert 2 <= len(exponents) <= 9
        steps = {b - a for a, b in zip(exponents, exponents[1:])}
        assert len(steps) == 1 and steps.pop() in (1, 2, 5, 10, 20, 50)
        stride = exponents[1] - exponents[0]
        assert all(e % stride == 0 for e in exponents)
    # 0.6^199 is about 1e-44: 45 decades, so a stride of 10 (10^0, 10^-10, ..., 10^-40).
    assert [round(math.log10(t)) for t in fig.axes[0].get_yticks()
            if fig.axes[0].get_ylim()[0] <= t <= fig.axes[0].get_ylim()[1]] == [-40, -30, -20, -10, 0]


def test_plot_gradflow_png_shows_each_report_in_its_colour(tmp_path):
    """Guards against a blank picture despite zero and infinite norms: the decoded PNG is 1200 x 480 and
    both reports' colours are drawn in both panels."""
    reports = [_report("rnn", [0.5 ** k if k < 30 else 0.0 for k in range(40)], clip_scale=0.1),
               _report("lstm", [3.0 ** k if k < 35 else math.inf for k in range(40)], scale=3.0, clip_scale=1e-9)]
    out = plot_gradflow(reports, tmp_path / "g.png", title="test")
    assert out == tmp_path / "g.png"
    image = imread(out)
    assert image.shape[:2] == (480, 1200)
    left, right = image[60:400, 90:590], image[60:400, 690:1180]
    for area in (left, right):
        assert _pixels_near(area, BLUE) > 200 and _pixels_near(area, ORANGE) > 200


def test_plot_gradflow_errors_name_the_cause(tmp_path):
    """No reports, or an unwritable path, is a one-line error whose hint names the --plot option."""
    with pytest.raises(ChargenError, match="no gradient-flow reports"):
        plot_gradflow([], tmp_path / "g.png")
    with pytest.raises(ChargenError, match="cannot write") as info:
        plot_gradflow([_report("lstm", [1.0, 0.5])], tmp_path / "missing" / "g.png")
    assert info.value.hint == "choose a writable --plot path"
