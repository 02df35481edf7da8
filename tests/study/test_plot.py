"""Plots: metrics parsing, learning-curve and gradient-flow PNGs, and matplotlib staying optional."""
from __future__ import annotations

import json
import math
import sys

import pytest

from chargen.errors import ChargenError
from chargen.study.plot import _positive, plot_gradflow, plot_runs, read_metrics


def _write_run(path, n=12, scale=1.0, null_val_at=None):
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


def test_plot_two_runs_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    a = _write_run(tmp_path / "shakespeare-gru", null_val_at=4)  # a null val_loss must be skipped, not crash
    b = _write_run(tmp_path / "shakespeare-lstm", scale=1.3)
    out = plot_runs([a, b], tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_plot_checks_every_run_before_drawing(tmp_path):
    a = _write_run(tmp_path / "a")
    with pytest.raises(ChargenError, match="does not exist"):
        plot_runs([a, tmp_path / "missing"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_gives_an_install_hint(tmp_path, monkeypatch):
    """Without matplotlib the user gets exit-code-1 material (message + pip hint), not an ImportError."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    a = _write_run(tmp_path / "a")
    with pytest.raises(ChargenError, match="plotting needs matplotlib") as info:
        plot_runs([a], tmp_path / "x.png")
    assert info.value.hint == "pip install 'chargen[plot]'"
    with pytest.raises(ChargenError, match="plotting needs matplotlib") as info:
        plot_gradflow([_report("rnn", [1.0, 0.5])], tmp_path / "g.png")
    assert info.value.hint == "pip install 'chargen[plot]'" and not (tmp_path / "g.png").exists()


def test_importing_chargen_plot_does_not_import_matplotlib():
    """matplotlib is an optional extra: the library must import without it."""
    import subprocess

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


def test_plot_gradflow_writes_a_png_despite_zero_and_infinite_norms(tmp_path):
    """Underflowed (0) and overflowed (inf) norms, and a report whose lag-0 norm is 0, must not stop the plot."""
    pytest.importorskip("matplotlib")
    reports = [_report("rnn", [0.5 ** k if k < 30 else 0.0 for k in range(40)], clip_scale=0.1),
               _report("rnn", [3.0 ** k if k < 35 else math.inf for k in range(40)], scale=3.0, clip_scale=1e-9),
               _report("gru", [0.0] * 40)]
    out = plot_gradflow(reports, tmp_path / "g.png", title="test")
    assert out == tmp_path / "g.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_gradflow_errors_name_the_cause(tmp_path):
    """No reports, or an unwritable path, is a one-line error whose hint names the --plot option."""
    pytest.importorskip("matplotlib")
    with pytest.raises(ChargenError, match="no gradient-flow reports"):
        plot_gradflow([], tmp_path / "g.png")
    with pytest.raises(ChargenError, match="cannot write") as info:
        plot_gradflow([_report("lstm", [1.0, 0.5])], tmp_path / "missing" / "g.png")
    assert info.value.hint == "choose a writable --plot path"
