"""The study commands through the CLI: compare, plot and gradflow (exit codes, streams, what reaches the library)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from chargen.training.checkpoint import load_model
from chargen.cli import app
from chargen.training.config import TrainConfig
from chargen.data.vocab import Vocab
from chargen.study.gradflow import fresh_model, gradient_flow_report
from chargen.model.charrnn import ModelConfig

TWINKLE = "Twinkle, twinkle, little star,\nHow I wonder what you are!\n"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_gradflow_json_matches_library(trained_run, tmp_path):
    """--json must print the library's report for the checkpoint's model unchanged, as a list of one,
    with the default clip bound (TrainConfig.grad_clip) and where the model came from."""
    text = tmp_path / "t.txt"
    text.write_text(TWINKLE * 2)
    result = invoke("gradflow", trained_run.best, "--text", text, "--offset", 3, "--max-lag", 12, "--json")
    assert result.exit_code == 0, result.stderr
    (report,) = json.loads(result.stdout)
    model, vocab, _ = load_model(trained_run.best)
    want = gradient_flow_report(model, vocab.encode((TWINKLE * 2)[3:17]), 12, max_norm=TrainConfig().grad_clip)
    assert report["lags"] == list(range(13)) and report["norms"] == pytest.approx(want["norms"], rel=1e-6)
    assert report["clip"]["max_norm"] == 1.0
    assert report["clip"]["total_norm"] == pytest.approx(want["clip"]["total_norm"], rel=1e-6)
    assert report["checkpoint"] == str(trained_run.best) and report["seed"] is None
    assert report["threshold"] == 1e-3 and report["cell"] == "lstm" and report["recurrent_scale"] == 1.0


def test_gradflow_fresh_flags_reach_the_models():
    """Every --fresh flag must reach the right field: one report per cell, in order, each equal to the
    library's report for fresh_model(ModelConfig(...), seed) on the --prime text's vocabulary."""
    result = invoke("gradflow", "--fresh", "--cells", "rnn, gru", "--num-layers", 1, "--hidden-size", 6,
                    "--embedding-dim", 5, "--seed", 3, "--prime", TWINKLE, "--max-lag", 8, "--threshold", 0.01,
                    "--recurrent-scale", 2.5, "--clip", 0.25, "--json")
    assert result.exit_code == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["cell"] for r in reports] == ["rnn", "gru"]
    vocab = Vocab.from_text(TWINKLE)
    for r in reports:
        cfg = ModelConfig(vocab_size=len(vocab), cell=r["cell"], num_layers=1, hidden_size=6, embedding_dim=5)
        want = gradient_flow_report(fresh_model(cfg, 3), vocab.encode(TWINKLE[:10]), 8, threshold=0.01,
                                    max_norm=0.25, recurrent_scale=2.5)
        assert r["norms"] == pytest.approx(want["norms"], rel=1e-6) and r["horizon"] == want["horizon"]
        assert (r["num_layers"], r["hidden_size"], r["seed"], r["checkpoint"]) == (1, 6, 3, None)
        assert r["recurrent_scale"] == 2.5 and r["threshold"] == 0.01 and r["clip"]["max_norm"] == 0.25
        assert r["clip"]["clipped_norm"] <= 0.25 + 1e-6


def test_gradflow_table_has_a_column_per_cell_on_stderr(tmp_path):
    """Without --json the table (one column per model, horizon and clipping rows) goes to stderr, stdout
    stays empty, and --plot writes the PNG it names."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "g.png"
    result = invoke("gradflow", "--fresh", "--cells", "rnn,lstm", "--num-layers", 1, "--hidden-size", 6,
                    "--embedding-dim", 5, "--prime", TWINKLE, "--max-lag", 5, "--plot", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "Gradient flow, fresh models, seed 1337" in result.stderr
    for text in ("rnn 1x6", "lstm 1x6", "horizon", "after clipping at 1", "cosine", f"wrote {out}"):
        assert text in result.stderr, text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gradflow_checkpoint_table_goes_to_stderr(trained_run):
    """A checkpoint gives a one-column table on stderr naming the checkpoint; stdout stays empty."""
    result = invoke("gradflow", trained_run.best, "--prime", TWINKLE, "--max-lag", 5)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "lstm 2x16" in result.stderr and "horizon" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--fresh", "CKPT"], "error: a checkpoint holds one trained model and --fresh builds new ones "
                          "(hint: pass a checkpoint or --fresh, not both)\n"),
    (["CKPT", "--cells", "rnn", "--seed", 2], "error: --cells, --seed only apply to --fresh models; a checkpoint "
                                              "has its own cell and sizes (hint: add --fresh, or drop them to "
                                              "measure the checkpoint)\n"),
    (["--fresh"], "error: --fresh needs a text to build the vocabulary from and to read (hint: pass --text or "
                  "--prime)\n"),
    (["--fresh", "--cells", "rnn,transformer", "--prime", TWINKLE], "error: unknown cell 'transformer' "
                                                                    "(hint: use one of: rnn, lstm, gru)\n"),
    (["CKPT", "--prime", "Tw", "--max-lag", 50], "error: need a 1-D sequence of at least 52 ids for max_lag 50 "
                                                 "(hint: use a longer text or a smaller --max-lag)\n"),
    (["CKPT", "--prime", TWINKLE, "--max-lag", 5, "--clip", 0], "error: clip norm must be a positive number, got 0.0 "
                                                "(hint: try --grad-clip 1)\n"),
])
def test_gradflow_bad_combinations_are_one_line_errors(trained_run, args, message):
    """A checkpoint with --fresh (it has one cell), fresh-only options without --fresh, and bad inputs
    exit 1 with the exact message and hint, no traceback."""
    result = invoke("gradflow", *[trained_run.best if a == "CKPT" else a for a in args])
    assert result.exit_code == 1 and result.stderr == message and result.stdout == ""


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


def test_gradflow_json_writes_non_finite_numbers_as_null():
    """Guards against `NaN` or `Infinity` on stdout (not JSON): an overflowed norm or a 0/0 ratio becomes null,
    nested in lists and dicts, while finite numbers, ints and None pass through unchanged."""
    from chargen.cli.gradflow import _json_safe

    value = {"norms": [1e-300, float("nan")], "clip": {"total_norm": float("inf"), "scale": 0.5},
             "horizon": None, "k": 3}
    assert _json_safe(value) == {"norms": [1e-300, None], "clip": {"total_norm": None, "scale": 0.5},
                                 "horizon": None, "k": 3}
    assert json.loads(json.dumps(_json_safe([float("-inf")]))) == [None]
