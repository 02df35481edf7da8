"""A tampered model folder or checkpoint, or a wrong path to one, through the CLI: each is one line and
exit 1, never a traceback, a silent NaN model or invalid JSON; and names that are not UTF-8 reach the
exported text."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import Checkpoint, load_model
from chargen.cli import app
from chargen.modelfile.folder import CONFIG, WEIGHTS

HINT = "(hint: export the model again with: chargen export CHECKPOINT --format safetensors)"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(trained_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tampered") / "m"
    assert invoke("export", trained_run.best, "--out", out).exit_code == 0
    return out


def copy_with_config(folder: Path, dest: Path, edit) -> Path:
    """A copy of `folder` whose config.json is edit(the text of the original)."""
    dest.mkdir()
    (dest / WEIGHTS).write_bytes((folder / WEIGHTS).read_bytes())
    (dest / CONFIG).write_text(edit((folder / CONFIG).read_text(encoding="utf-8")), encoding="utf-8")
    return dest


def set_key(key: str, raw: str):
    """An edit that sets config.json's top-level `key` to the JSON text `raw` (whatever json.dumps would refuse)."""
    return lambda text: "{" + json.dumps(key) + ": " + raw + ", " + text.lstrip()[1:].replace(
        f'\n  {json.dumps(key)}:', f'\n  "replaced_{key}":', 1)


def set_training(key: str, raw: str):
    return lambda text: text.replace('"training": {', '"training": {' + json.dumps(key) + ": " + raw + ", ", 1) \
        .replace(f'\n    {json.dumps(key)}:', f'\n    "replaced_{key}":', 1)


@pytest.mark.parametrize("edit, message", [
    (set_key("hidden_size", "1e400"), "config.hidden_size is not a finite number (inf)"),
    (set_key("dropout", "NaN"), "config.dropout is not a finite number (nan)"),
    (set_training("step", "1" + "0" * 400), "config.training.step is a number too large"),
    (set_training("seconds", "1e999"), "config.training.seconds is not a finite number (inf)"),
    (set_key("cell", json.dumps("x" * 100_000)), "config.cell is a string of 100,000 characters"),
    (set_training("train_config", '{"lr": [[[0.1]]]}'), "config.training.train_config.lr[0] is nested too deep"),
    (set_key("vocab", '"abc"'), "vocab is 'abc', not a list of characters"),
    (set_key("unk", "7"), "unk is 7, not a string"),
    (set_key("training", "[1, 2]"), "training is [1, 2], not an object"),
    (set_training("step", "-3"), "training.step is -3, not a non-negative integer"),
    (set_training("step", "true"), "training.step is True, not a non-negative integer"),
    (set_training("seconds", '"fast"'), "training.seconds is 'fast', not a non-negative number"),
    (set_training("corpus", "5"), "training.corpus is 5, not a string"),
])
def test_a_tampered_config_is_one_line(folder, tmp_path, edit, message):
    """Guards against a loader that crashes on numbers that overflow (int(inf)), on very long or deeply
    nested values, or on values of the wrong type, or that shows a 100,000-character value."""
    damaged = copy_with_config(folder, tmp_path / "d", edit)
    json.loads((damaged / CONFIG).read_text(encoding="utf-8"))  # still JSON (Python's reader takes NaN, 1e400)
    result = invoke("sample", damaged, "--length", 5)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: {damaged / CONFIG} has a damaged configuration: {message} {HINT}\n"


@pytest.mark.parametrize("raw, message", [
    ("[" * 100_000 + "]" * 100_000, "maximum recursion depth exceeded"),
    ("9" * 5000, "Exceeds the limit (4300 digits)"),
])
def test_json_python_cannot_read_is_one_line(folder, tmp_path, raw, message):
    """Nesting 100,000 deep (json.loads: RecursionError) and an integer of 5,000 digits (ValueError)."""
    damaged = copy_with_config(folder, tmp_path / "d", lambda text: raw)
    result = invoke("info", damaged)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: {damaged / CONFIG} is not readable JSON (") and message in result.stderr
    assert result.stderr.endswith(" (hint: export the model again)\n") and result.stderr.count("\n") == 1


def nan_weights(path: Path, make_folder: bool, tmp_path: Path) -> Path:
    """A copy of the model at `path` with one NaN in head.bias, as a folder or as a .pt file."""
    ckpt = load_model(path)[2]
    weights = {k: v.clone() for k, v in ckpt.model.items()}
    weights["head.bias"][3] = float("nan")
    if make_folder:
        from safetensors.torch import save_file
        dest = copy_with_config(path, tmp_path / "nan", lambda text: text)
        save_file(weights, str(dest / WEIGHTS), metadata={"format": "pt"})
        return dest
    dest = tmp_path / "nan.pt"
    Checkpoint(ckpt.model_config, ckpt.vocab, weights, ckpt.train_config).save(dest)
    return dest


@pytest.mark.parametrize("make_folder", [True, False], ids=["folder", "checkpoint"])
@pytest.mark.parametrize("command", ["sample", "eval", "export"])
def test_non_finite_weights_are_refused_where_a_model_is_read(trained_run, folder, tmp_path, make_folder, command):
    """Guards against NaN weights that load silently: `sample` then wrote only newlines and
    `eval --json` printed NaN, which is not JSON."""
    path = nan_weights(folder if make_folder else trained_run.best, make_folder, tmp_path)
    args = {"sample": ["--length", 5], "eval": [trained_run.corpus, "--json"], "export": ["--out", tmp_path / "x"]}
    result = invoke(command, path, *args[command])
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"error: {path} has weights that are not finite numbers (NaN or infinity in head.bias) "
                             "(hint: use another checkpoint, e.g. an earlier one of the run (a run whose loss became "
                             "NaN: train again with a lower --lr))\n")
    assert not (tmp_path / "x").exists()


def test_a_corpus_name_that_is_not_utf8_reaches_the_exports_as_text(trained_run, tmp_path):
    """Guards against an export that crashed on a corpus file named b'caf\\xe9.txt' (Linux allows any bytes):
    the card, config.json and the page show the name with U+FFFD, as does an --out name that is not UTF-8."""
    ckpt = load_model(trained_run.best)[2]
    name = os.fsdecode(b"caf\xe9.txt")  # 'caf\udce9.txt', as Python reads it from the file system
    Checkpoint(ckpt.model_config, ckpt.vocab, ckpt.model, ckpt.train_config, step=ckpt.step,
               corpus=name).save(tmp_path / "best.pt")
    out = tmp_path / os.fsdecode(b"mod\xe8le")
    result = invoke("export", tmp_path / "best.pt", "--out", out)
    assert result.exit_code == 0, result.stderr
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "# chargen LSTM on caf\ufffd.txt\n" in card and "| corpus | caf\ufffd.txt |" in card
    assert "chargen train caf\ufffd.txt --cell lstm" in card and "chargen sample mod\ufffdle --temp 0.8" in card
    assert json.loads((out / CONFIG).read_text(encoding="utf-8"))["training"]["corpus"] == "caf\ufffd.txt"
    page = tmp_path / "p.html"
    assert invoke("export", tmp_path / "best.pt", "--format", "web", "--out", page).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert "<title>chargen LSTM on caf\ufffd.txt</title>" in text and "<dd>caf\ufffd.txt</dd>" in text


@pytest.mark.parametrize("name", [WEIGHTS, CONFIG, "README.md"])
def test_a_file_of_a_model_folder_names_the_folder(folder, name):
    """Guards against `chargen sample m/model.safetensors` saying it is 'a PyTorch file but not a chargen
    checkpoint' (torch.load reads safetensors) with a hint about best.pt: the folder is what to pass."""
    result = invoke("sample", folder / name, "--length", 3)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"error: {folder / name} is one file of the model folder {folder} "
                             f"(hint: pass the folder itself: {folder})\n")


def test_a_run_folder_points_to_its_checkpoint(trained_run):
    result = invoke("sample", trained_run.run_dir, "--length", 3)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (f"error: {trained_run.run_dir} is a folder but not a chargen model folder (it needs "
                             f"config.json and model.safetensors) (hint: pass its checkpoint: {trained_run.best})\n")


def test_sample_with_stdout_closed_is_one_line(folder):
    """Guards against a traceback (AttributeError on None) for `chargen sample m >&-`."""
    root = Path(__file__).resolve().parents[2]  # this checkout's chargen, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, "-m", "chargen", "sample", str(folder),
                           "--length", "3"], stderr=subprocess.PIPE, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 1
    assert proc.stderr == ("error: stdout is closed, and the text goes there "
                           "(hint: redirect it instead, e.g. > sample.txt)\n")


@pytest.mark.parametrize("key, value, shown", [
    ("corpus", 5, "5"), ("best_val_loss", "abc", "'abc'"), ("step", "7", "'7'"), ("elapsed", None, "None"),
    ("corpus_chars", -1, "-1"), ("elapsed", float("nan"), "nan"),
    ("step", 10**400, "100000000000000000...0000000000000000000"),
], ids=["int-corpus", "str-loss", "str-step", "no-elapsed", "negative-chars", "nan-elapsed", "huge-step"])
@pytest.mark.parametrize("command", ["export", "info"])
def test_a_checkpoint_with_a_tampered_figure_is_one_line(trained_run, tmp_path, key, value, shown, command):
    """Guards against a card or a table crashing on a run's figure of the wrong type (an int corpus name,
    a string step, no elapsed time): the checkpoint is refused on reading, naming the figure."""
    state = torch.load(trained_run.best, weights_only=True)
    path = tmp_path / "bad.pt"
    torch.save({**state, key: value}, path)
    result = invoke(command, path, *(["--out", tmp_path / "x"] if command == "export" else []))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: {path} has a damaged {key}: {shown} (hint: use another checkpoint)\n"
