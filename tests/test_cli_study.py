"""The study commands through the CLI: compare, plot and gradflow (exit codes, streams, what reaches the library)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chargen.cli import app


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_gradflow_json_matches_library(trained_run, tmp_path):
    """--json must print the library's report unchanged (lags 0..max-lag, positive norms, lag-0 first)."""
    text = tmp_path / "t.txt"
    text.write_text("Twinkle, twinkle, little star,\nHow I wonder what you are!\n" * 2)
    result = invoke("gradflow", trained_run.best, "--text", text, "--max-lag", 12, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["lags"] == list(range(13)) and len(report["norms"]) == 13
    assert all(n >= 0 for n in report["norms"]) and report["norms"][0] > 0
    assert report["threshold"] == 1e-3 and report["cell"] in ("rnn", "lstm", "gru")


def test_gradflow_table_goes_to_stderr(trained_run):
    """Without --json the table and horizon line go to stderr and stdout stays empty."""
    result = invoke("gradflow", trained_run.best, "--prime", "Twinkle, twinkle, little star", "--max-lag", 5)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "Gradient flow" in result.stderr and ("horizon" in result.stderr
                                                                          or "no vanishing" in result.stderr)


def test_gradflow_text_too_short_is_one_line(trained_run):
    """A text shorter than max-lag + 2 characters must exit 1 with a message, not a traceback."""
    result = invoke("gradflow", trained_run.best, "--prime", "Tw", "--max-lag", 50)
    assert result.exit_code == 1 and result.stderr.startswith("error:") and "Traceback" not in result.stderr


def test_compare_prints_table_and_samples(tmp_path, corpus_file):
    """compare must train each cell into OUT/<cell>, put the table on stderr and only samples on stdout."""
    result = invoke("compare", corpus_file, "--cells", "gru,rnn", "--max-time", 0, "--max-steps", 6,
                    "--hidden-size", 8, "--embedding-dim", 4, "--num-layers", 1, "--batch-size", 2, "--seq-len", 8,
                    "--eval-every", 3, "--sample-length", 15, "--device", "cpu", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "cmp" / "gru" / "best.pt").exists() and (tmp_path / "cmp" / "rnn" / "best.pt").exists()
    assert "Cell comparison" in result.stderr and "Cell comparison" not in result.stdout
    parts = result.stdout.split("----- ")
    assert [p.split(" -----")[0] for p in parts[1:]] == ["gru", "rnn"]
    assert all(len(p.split(" -----\n", 1)[1]) == 16 for p in parts[1:])  # 15 characters and a newline


def test_compare_json_and_bad_cells(tmp_path, corpus_file):
    """--json lists one result per cell in order; an unknown cell exits 1 before any training."""
    result = invoke("compare", corpus_file, "--cells", "lstm", "--max-time", 0, "--max-steps", 4,
                    "--hidden-size", 8, "--embedding-dim", 4, "--num-layers", 1, "--batch-size", 2, "--seq-len", 8,
                    "--eval-every", 2, "--device", "cpu", "--out", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["cell"] == "lstm" and row["parameters"] > 0 and row["run_dir"].endswith("lstm")
    bad = invoke("compare", corpus_file, "--cells", "lstm,transformer", "--out", tmp_path / "other")
    assert bad.exit_code == 1 and "transformer" in bad.stderr and not (tmp_path / "other").exists()


def test_plot_command_writes_png(trained_run, tmp_path):
    """plot must write the PNG it names on stderr; a folder without metrics exits 1."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "c.png"
    result = invoke("plot", trained_run.best.parent, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result.stderr == f"wrote {out}\n"
    missing = invoke("plot", tmp_path / "nothing", "--out", out)
    assert missing.exit_code == 1 and missing.stderr.startswith("error:")
