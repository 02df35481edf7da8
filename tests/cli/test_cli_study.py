"""The study commands through the CLI: compare, plot and gradflow (exit codes, streams, what reaches the library)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread
from typer.testing import CliRunner

from chargen.cli import app
from chargen.data.vocab import Vocab
from chargen.model.charrnn import ModelConfig
from chargen.study.gradflow import fresh_model, gradient_flow_report
from chargen.modelfile import load_model
from chargen.config import TrainConfig

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
    out = tmp_path / "g.png"
    result = invoke("gradflow", "--fresh", "--cells", "rnn,lstm", "--num-layers", 1, "--hidden-size", 6,
                    "--embedding-dim", 5, "--prime", TWINKLE, "--max-lag", 5, "--plot", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "Gradient flow, fresh models, seed 1337" in result.stderr
    for text in ("rnn 1x6", "lstm 1x6", "horizon", "after clipping at 1", "cosine", f"wrote {out}"):
        assert text in result.stderr, text
    assert imread(out).ndim == 3  # a PNG that decodes


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
    (["--fresh", "--cells", "rnn,transformer", "--prime", TWINKLE], "error: unknown cell 'transformer' "
                                                                    "(hint: use one of: rnn, lstm, gru)\n"),
    (["CKPT", "--prime", "Tw", "--max-lag", 50], "error: the text is too short for --max-lag 50: it has 2 characters "
                                                 "and 52 are needed (hint: pass a longer --text or a smaller "
                                                 "--max-lag)\n"),
    (["CKPT", "--prime", TWINKLE, "--offset", 50], "error: the text is too short for --max-lag 50: it has 8 characters "
                                                   "from --offset 50 and 52 are needed (hint: pass a longer --text or "
                                                   "a smaller --max-lag)\n"),
    (["CKPT", "--max-lag", 600], "error: the text is too short for --max-lag 600: it has 557 characters and 602 are "
                                 "needed (hint: pass a longer --text or a smaller --max-lag)\n"),
    (["CKPT", "--prime", TWINKLE, "--max-lag", 5, "--clip", 0], "error: clip norm must be a positive number, got 0.0 "
                                                "(hint: try --grad-clip 1)\n"),
])
def test_gradflow_bad_combinations_are_one_line_errors(trained_run, args, message):
    """A checkpoint with --fresh (it has one cell), fresh-only options without --fresh, and bad inputs
    exit 1 with the exact message and hint, no traceback."""
    result = invoke("gradflow", *[trained_run.best if a == "CKPT" else a for a in args])
    assert result.exit_code == 1 and result.stderr == message and result.stdout == ""


def test_gradflow_without_text_reads_the_built_in_passage(trained_run):
    """Guards against `chargen gradflow CHECKPOINT` failing for want of a text: it reads the built-in passage
    (a note on stderr names it), its characters the model never learned as U+FFFD after one warning line,
    and reports what the library reports for that passage."""
    from chargen.study.passage import PASSAGE

    result = invoke("gradflow", trained_run.best, "--max-lag", 6, "--json")
    assert result.exit_code == 0, result.stderr
    (report,) = json.loads(result.stdout)
    model, vocab, _ = load_model(trained_run.best)
    unknown = vocab.unknown(PASSAGE[:8])  # the poem's model has never seen 'F' or 'r', among others
    assert unknown and result.stderr == (f"warning: the model never learned {', '.join(map(repr, unknown))}; "
                                         "read as its unknown symbol U+FFFD\n")
    want = gradient_flow_report(model, vocab.encode(PASSAGE[:8]), 6, max_norm=TrainConfig().grad_clip)
    assert report["norms"] == pytest.approx(want["norms"], rel=1e-6) and report["text"] == "built-in"
    table = invoke("gradflow", trained_run.best, "--max-lag", 6)
    assert table.exit_code == 0 and table.stderr.startswith("reading the built-in passage (the Gettysburg Address); "
                                                            "pass --text FILE to read your own\n")


def test_gradflow_fresh_without_text_builds_on_the_passage():
    """--fresh with no text builds its models on the built-in passage's vocabulary (and the symbol)."""
    from chargen.study.passage import PASSAGE

    result = invoke("gradflow", "--fresh", "--cells", "gru", "--num-layers", 1, "--hidden-size", 6,
                    "--embedding-dim", 5, "--max-lag", 4, "--json")
    assert result.exit_code == 0, result.stderr
    (report,) = json.loads(result.stdout)
    vocab = Vocab.from_text(PASSAGE)
    cfg = ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=6, embedding_dim=5)
    want = gradient_flow_report(fresh_model(cfg, TrainConfig().seed), vocab.encode(PASSAGE[:6]), 4,
                                max_norm=TrainConfig().grad_clip)
    assert report["norms"] == pytest.approx(want["norms"], rel=1e-6) and result.stderr == ""


def test_the_built_in_passage_is_plain_text():
    """The passage must be long enough for the default --max-lag many times over, and plain ASCII, so an
    English model knows every character of it."""
    from chargen.study.passage import PASSAGE

    assert len(PASSAGE) == 557 and PASSAGE.isascii() and PASSAGE.startswith("Four score and seven years ago")


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
    out = tmp_path / "c.png"
    result = invoke("plot", trained_run.best.parent, "--out", out)
    assert result.exit_code == 0, result.stderr
    assert imread(out).ndim == 3 and result.stderr == f"wrote {out}\n"
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


BLUE, ORANGE, GREEN = to_rgb("#1f77b4"), to_rgb("#ff7f0e"), to_rgb("#2ca02c")  # matplotlib's C0, C1, C2
TINY_COMPARE = ["--max-time", 0, "--max-steps", 6, "--hidden-size", 8, "--embedding-dim", 4, "--num-layers", 1,
                "--batch-size", 2, "--seq-len", 8, "--eval-every", 3, "--sample-length", 5, "--device", "cpu"]
NO_MATPLOTLIB = ("warning: no loss curves: plotting needs matplotlib, which is not installed "
                 "(hint: pip install matplotlib)\n")


def _pixels_near(image, colour, tol=0.03) -> int:
    """How many pixels of a decoded (H, W, 3|4) PNG are within `tol` of an RGB colour in every channel."""
    return int((np.abs(image[..., :3] - np.array(colour)) < tol).all(axis=-1).sum())


def _hide_matplotlib(monkeypatch):
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import raise ImportError


def test_compare_draws_each_cells_curves(tmp_path, corpus_file):
    """The default OUT/curves.png holds both cells' curves (C0 blue and C1 orange, no third colour),
    at the 1200 x 450 figure size, and stderr names it."""
    result = invoke("compare", corpus_file, "--cells", "gru,rnn", *TINY_COMPARE, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.stderr
    png = tmp_path / "cmp" / "curves.png"
    assert f"loss curves: {png}\n" in result.stderr
    image = imread(png)
    assert image.shape[:2] == (450, 1200)
    assert _pixels_near(image, BLUE) > 200 and _pixels_near(image, ORANGE) > 200 and _pixels_near(image, GREEN) == 0


@pytest.mark.parametrize("flags", [[], ["--quiet"], ["--json"]])
def test_compare_without_matplotlib_says_why_there_are_no_curves(tmp_path, corpus_file, monkeypatch, flags):
    """Guards against the dead end of curves skipped in silence: without matplotlib, compare still finishes
    (exit 0, samples or JSON on stdout) and says on one stderr line why there is no curves.png and how to
    install it, every time, --quiet and --json included."""
    _hide_matplotlib(monkeypatch)
    result = invoke("compare", corpus_file, "--cells", "rnn", *TINY_COMPARE, "--out", tmp_path / "cmp", *flags)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count(NO_MATPLOTLIB) == 1 and NO_MATPLOTLIB not in result.stdout
    assert (tmp_path / "cmp" / "rnn" / "best.pt").is_file() and not (tmp_path / "cmp" / "curves.png").exists()
    if flags == ["--quiet"]:
        assert result.stderr == NO_MATPLOTLIB


def test_compare_with_plot_and_no_matplotlib_fails_before_training(tmp_path, corpus_file, monkeypatch):
    """An explicit --plot that cannot be drawn is exit 1 with the install hint, before any training time is spent."""
    _hide_matplotlib(monkeypatch)
    result = invoke("compare", corpus_file, "--cells", "rnn", *TINY_COMPARE, "--out", tmp_path / "cmp",
                    "--plot", tmp_path / "c.png")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: plotting needs matplotlib, which is not installed (hint: pip install matplotlib)\n"
    assert not (tmp_path / "cmp").exists()


def test_plot_command_png_shows_the_run(trained_run, tmp_path):
    """Replaces the header-only check of test_plot_command_writes_png: the PNG decodes to 1200 x 450 and
    shows the one run in C0 blue and no second run's orange."""
    out = tmp_path / "c.png"
    result = invoke("plot", trained_run.best.parent, "--out", out)
    assert result.exit_code == 0 and result.stderr == f"wrote {out}\n"
    image = imread(out)
    assert image.shape[:2] == (450, 1200)
    assert _pixels_near(image, BLUE) > 200 and _pixels_near(image, ORANGE) == 0


def test_plot_command_without_matplotlib_is_one_line(trained_run, tmp_path, monkeypatch):
    _hide_matplotlib(monkeypatch)
    result = invoke("plot", trained_run.best.parent, "--out", tmp_path / "c.png")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == "error: plotting needs matplotlib, which is not installed (hint: pip install matplotlib)\n"


def test_gradflow_plot_png_shows_both_models(tmp_path):
    """Replaces the header-only check at the end of test_gradflow_table_has_a_column_per_cell_on_stderr:
    the --plot PNG decodes to 1200 x 480 and holds the rnn (C0 blue) and lstm (C1 orange) curves."""
    out = tmp_path / "g.png"
    result = invoke("gradflow", "--fresh", "--cells", "rnn,lstm", "--num-layers", 1, "--hidden-size", 6,
                    "--embedding-dim", 5, "--prime", TWINKLE, "--max-lag", 5, "--plot", out)
    assert result.exit_code == 0, result.stderr
    image = imread(out)
    assert image.shape[:2] == (480, 1200)
    assert _pixels_near(image, BLUE) > 200 and _pixels_near(image, ORANGE) > 200 and _pixels_near(image, GREEN) == 0


COMPARE_SIZES = ["--hidden-size", 8, "--embedding-dim", 4, "--num-layers", 1, "--batch-size", 2, "--seq-len", 8,
                 "--eval-every", 3, "--sample-length", 5, "--device", "cpu"]


def test_compare_holds_steps_equal_by_default(tmp_path, corpus_file):
    """Guards against the machine-dependent default: a time budget let a cheap cell take more steps on a
    slow CPU and rank first. By default every cell now trains the same steps (no time limit), and the
    output says what was held equal; each row has its steps, characters seen, hidden size and stop."""
    result = invoke("compare", corpus_file, "--cells", "rnn,gru", "--max-steps", 6, *COMPARE_SIZES,
                    "--out", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    held = "6 steps of batches of 2 x 8 (96 chars), the same sizes, seed 1337, dropout by the training recipe"
    for row in rows:
        assert (row["steps"], row["chars_seen"], row["hidden_size"], row["stop_reason"]) == (6, 96, 8, "max_steps")
        assert row["held_equal"] == held
        ckpt = load_model(tmp_path / "cmp" / row["cell"] / "last.pt")[2]
        assert ckpt.train_config.max_time == 0 and ckpt.train_config.max_steps == 6
    table = invoke("compare", corpus_file, "--cells", "rnn", "--max-steps", 6, *COMPARE_SIZES,
                   "--out", tmp_path / "cmp2")
    assert f"held equal: {held}\n" in table.stderr
    for column in ("hidden", "params", "drop", "steps", "chars", "96", "val loss", "time s", "stop", "max_steps"):
        assert column in table.stderr, column


def test_compare_dropout_follows_the_training_recipe(tmp_path, corpus_file):
    """Guards against compare's fixed dropout 0.1: without --dropout, a run of few passes over the text
    gets 0 and one of many passes 0.1, as `chargen train` chooses (recipes.choose_dropout); --dropout wins."""
    few = invoke("compare", corpus_file, "--cells", "gru", "--max-steps", 3, *COMPARE_SIZES,
                 "--out", tmp_path / "few", "--json")
    many = invoke("compare", corpus_file, "--cells", "gru", "--max-steps", 30, *COMPARE_SIZES, "--batch-size", 16,
                  "--seq-len", 32, "--out", tmp_path / "many", "--json")  # 15,360 chars: 7.5 passes of 2,034
    given = invoke("compare", corpus_file, "--cells", "gru", "--max-steps", 3, *COMPARE_SIZES, "--dropout", 0.3,
                   "--out", tmp_path / "given", "--json")
    assert [json.loads(r.stdout)[0]["dropout"] for r in (few, many, given)] == [0.0, 0.1, 0.3]
    assert json.loads(given.stdout)[0]["held_equal"].endswith("seed 1337, the same dropout")


def test_compare_equal_params_and_converge(tmp_path, corpus_file):
    """--equal-params picks each cell's hidden size for about N parameters (shown); --budget converge
    stops a cell once --patience evaluations bring nothing better, at most --max-steps."""
    result = invoke("compare", corpus_file, "--cells", "rnn,lstm", "--budget", "converge", "--patience", 1,
                    "--max-steps", 12, "--equal-params", 1500, *COMPARE_SIZES, "--out", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["hidden_size"] for r in rows] == [23, 13]  # the RNN, with one weight set, gets the wider layer
    assert all(abs(r["parameters"] - 1500) <= 75 for r in rows)
    assert rows[0]["held_equal"] == ("training until 1 evaluations bring no better validation loss (at most 12 "
                                     "steps of batches of 2 x 8), about 1,500 parameters, seed 1337, "
                                     "dropout by the training recipe")
    assert all(r["stop_reason"] in ("patience", "max_steps") and r["steps"] <= 12 for r in rows)
    bad = invoke("compare", corpus_file, "--budget", "minutes", "--out", tmp_path / "bad")
    assert bad.exit_code == 1 and "unknown budget 'minutes'" in bad.stderr and not (tmp_path / "bad").exists()


def test_eval_html_colours_each_character_by_its_loss(trained_run, tmp_path):
    """eval --html writes one offline page: a span per character whose hover text gives p of the right
    character and whose colour bucket follows its loss, the mean loss, a legend and the worst spans."""
    import html as html_lib
    import math
    import re

    from chargen.study.surprise import score_characters
    from chargen.study.surprise_page import bucket_of

    text = tmp_path / "t.txt"
    text.write_text(TWINKLE * 3, encoding="utf-8")
    out = tmp_path / "page.html"
    result = invoke("eval", trained_run.best, text, "--html", out, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}\n" in result.stderr and result.stdout == ""
    page = out.read_text(encoding="utf-8")
    model, vocab, _ = load_model(trained_run.best)
    want = score_characters(model, vocab, vocab.encode(TWINKLE * 3), "cpu")
    assert f"Mean loss <b>{want.mean_loss:.4f} nats per character</b>" in page
    spans = re.findall(r'<span id=c(\d+) class=b(\w+) title="([^"]*)">([^<]*)</span>', page)
    assert [int(s[0]) for s in spans] == list(range(len(TWINKLE) * 3))
    assert "".join(html_lib.unescape(s[3]) for s in spans) == TWINKLE * 3
    i, loss = 5, want.losses[5]
    assert spans[i][1] == str(bucket_of(loss))
    assert html_lib.unescape(spans[i][2]) == f"'l': p = {math.exp(-loss):.3g}, loss {loss:.2f} nats"
    assert spans[0][1] == "n"  # nothing predicted the first character
    assert "Loss in nats:" in page and page.count('<a href="#c') == 10
    for online in ("<script", "http:", "https:", "src=", "@import"):
        assert online not in page, online


def test_eval_html_never_overwrites_the_scored_text(trained_run, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TWINKLE, encoding="utf-8")
    result = invoke("eval", trained_run.best, text, "--html", text, "--device", "cpu")
    assert result.exit_code == 1 and text.read_text(encoding="utf-8") == TWINKLE
    assert f"error: {text} is the text or model being scored" in result.stderr


@pytest.mark.parametrize("kind", ["bytes", "records"])
def test_eval_html_reads_bytes_and_records_models(tmp_path, kind, make_model_config, make_train_config):
    """A bytes model's page shows characters (é is one span of 2 bytes, mean per byte); a records
    model's page shows each record after its end symbol, scored from a zero state."""
    import re

    from chargen import train

    text = tmp_path / "names.txt"
    text.write_text("Zoé\nAnna\nBo\n" * 30, encoding="utf-8")
    config = make_train_config(max_steps=4, eval_every=4, save_every=4,
                               **({"vocab": "bytes"} if kind == "bytes" else {"records": "lines"}))
    run = train(text, make_model_config(num_layers=1, hidden_size=6, embedding_dim=5), config,
                out=tmp_path / "run", progress=False)
    out = tmp_path / "page.html"
    result = invoke("eval", run.run_dir / "best.pt", text, "--html", out, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    spans = re.findall(r'<span id=c\d+ class=b\w+ title="([^"]*)">([^<]*)</span>', page)
    if kind == "bytes":
        assert "".join(s[1] for s in spans) == "Zoé\nAnna\nBo\n" * 30 and "nats per byte</b>" in page
        assert spans[2][0].startswith("&#x27;é&#x27;: p = ") and "(its 2 bytes)" in spans[2][0]
    else:
        assert "".join(s[1] for s in spans).startswith("\u241e\nZoé\u241e\nAnna\u241e\n")
        assert "each record from a zero state" in page and "nats per character</b>" in page
