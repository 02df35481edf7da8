"""`chargen export` through the CLI: what it writes, and that bad input is one line, a non-zero
exit and nothing half-written or lost."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargen.cli import app
from chargen.modelfile.folder import WEIGHTS

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit) and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], result.stderr
    for needle in needles:
        assert needle in lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders an export left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_export_then_sample_and_info_read_the_folder(trained_run, tmp_path):
    """Guards against a folder that `chargen sample` and `chargen info` cannot read, or read
    differently from the checkpoint it came from."""
    out = tmp_path / "shared"
    result = invoke("export", trained_run.best, "--format", "safetensors", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and f"wrote {out}" in result.stderr and "chargen sample" in result.stderr
    args = ["--seed", 3, "--length", 60, "--temp", 0.8, "--prime", "Like "]
    from_folder = invoke("sample", out, *args)
    from_file = invoke("sample", trained_run.best, *args)
    assert from_folder.exit_code == from_file.exit_code == 0
    assert from_folder.stdout == from_file.stdout and len(from_folder.stdout) >= 65
    info = json.loads(invoke("info", out, "--json").stdout)
    original = json.loads(invoke("info", trained_run.best, "--json").stdout)
    for key in ("corpus", "step", "parameters", "vocab_size", "unknown_symbol", "best_val_loss", "model_config"):
        assert info[key] == original[key], key
    assert info["corpus"] == "poem.txt"


def test_json_names_what_was_written(trained_run, tmp_path):
    result = invoke("export", trained_run.best, "--out", tmp_path / "m", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["format"] == "safetensors" and report["files"] == ["README.md", "config.json", WEIGHTS]
    assert report["bytes"] == sum(p.stat().st_size for p in (tmp_path / "m").iterdir())


def test_an_existing_output_is_refused_unless_forced_and_then_replaced_whole(trained_run, tmp_path):
    """Guards against an export that overwrites an earlier one unasked, or, with --force, merges
    into it (an old file surviving beside the new ones)."""
    out = tmp_path / "m"
    assert invoke("export", trained_run.best, "--out", out, "--title", "first").exit_code == 0
    assert_one_line_error(invoke("export", trained_run.best, "--out", out), "already exists", "--force")
    assert "# first" in (out / "README.md").read_text(encoding="utf-8")
    result = invoke("export", trained_run.best, "--out", out, "--force", "--title", "second")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", WEIGHTS]
    assert "# second" in (out / "README.md").read_text(encoding="utf-8")
    assert leftovers(tmp_path) == []


FORCE_REFUSED = "error: --force replaces only an earlier chargen {fmt} export, and {out} is not one " \
                "(hint: choose another --out, or move it aside yourself)\n"


def _users_folder(out: Path) -> None:
    out.mkdir()
    (out / "mine.txt").write_text("keep me")


def _export_plus_a_file(out: Path, best: Path) -> None:
    assert invoke("export", best, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("keep me")


def _foreign_config(out: Path, best: Path) -> None:
    out.mkdir()
    for name in ("README.md", WEIGHTS):
        (out / name).write_text("keep me")
    (out / "config.json").write_text(json.dumps({"library_name": "transformers"}))


def _link_to_export(out: Path, best: Path) -> None:
    assert invoke("export", best, "--out", out.with_name("real")).exit_code == 0
    out.symlink_to(out.with_name("real"))


@pytest.mark.parametrize("fmt, make", [
    ("safetensors", lambda out, best: _users_folder(out)),
    ("safetensors", _export_plus_a_file),
    ("safetensors", _foreign_config),
    ("safetensors", _link_to_export),
    ("safetensors", lambda out, best: out.write_text("a file of mine")),
    ("web", lambda out, best: out.write_text("<!doctype html><title>my own page</title>")),
    ("web", lambda out, best: _users_folder(out)),
    ("web", lambda out, best: invoke("export", best, "--out", out)),  # a model folder is not a page
], ids=["users-folder", "export-plus-a-file", "foreign-config", "link", "a-file", "users-page", "folder-for-web",
        "model-folder-for-web"])
def test_force_replaces_only_an_earlier_export(trained_run, tmp_path, fmt, make):
    """Guards against --force deleting whatever is at --out: a folder of the user's own files, an export
    the user added a file to, a folder of another library, a link, a page chargen did not write. Each
    is refused with one line and left exactly as it was."""
    out = tmp_path / "out"
    make(out, trained_run.best)
    before = snapshot(tmp_path)
    result = invoke("export", trained_run.best, "--format", fmt, "--out", out, "--force")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == FORCE_REFUSED.format(fmt=fmt, out=out)
    assert snapshot(tmp_path) == before


def test_force_replaces_an_earlier_page(trained_run, tmp_path):
    out = tmp_path / "poem.html"
    assert invoke("export", trained_run.best, "--format", "web", "--out", out, "--title", "first").exit_code == 0
    result = invoke("export", trained_run.best, "--format", "web", "--out", out, "--force", "--title", "second")
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["poem.html"]
    assert "<title>second</title>" in out.read_text(encoding="utf-8")


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every path under `folder` with its bytes (a link: where it points)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = f"-> {p.readlink()}" if p.is_symlink() else (p.read_bytes() if p.is_file() else "dir")
    return out


@pytest.mark.parametrize("args, needles", [
    (["--format", "tflite"], ("unknown export format 'tflite'", "safetensors, onnx, web")),
    (["--out", "{best_dir}", "--force"], ("would replace the checkpoint",)),
])
def test_bad_options_are_one_line(trained_run, tmp_path, monkeypatch, args, needles):
    args = [a.format(best_dir=trained_run.run_dir) for a in args]
    monkeypatch.chdir(tmp_path)  # the default --out lands here, if anything wrongly wrote it
    assert_one_line_error(invoke("export", trained_run.best, *args), *needles)
    assert list(tmp_path.iterdir()) == [] and (trained_run.run_dir / "best.pt").is_file()


def test_a_file_that_is_not_a_chargen_checkpoint_writes_nothing(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("just some text")
    assert_one_line_error(invoke("export", bogus, "--out", tmp_path / "m"), "not a valid chargen checkpoint")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.pt"]


def test_an_unwritable_output_folder_is_one_line(trained_run, tmp_path):
    """A read-only place (here: a path under a file, which even root cannot write into)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(invoke("export", trained_run.best, "--out", blocker / "m"), "cannot write", "writable")
    assert blocker.read_text() == "x"


def test_a_failure_while_writing_leaves_nothing_and_keeps_the_old_output(trained_run, tmp_path, monkeypatch):
    """Guards against a half-written export: the build fails after its first file (a full disk),
    and neither a partial folder nor a temporary one remains; a --force target keeps its old files."""
    import chargen.export.writer as writer

    old = tmp_path / "old"
    assert invoke("export", trained_run.best, "--out", old).exit_code == 0
    before = snapshot(tmp_path)

    def half_then_fail(ckpt, folder):
        (folder / WEIGHTS).write_bytes(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(writer, "write_model_files", half_then_fail)
    assert_one_line_error(invoke("export", trained_run.best, "--out", tmp_path / "new"), "No space left")
    assert snapshot(tmp_path) == before
    assert_one_line_error(invoke("export", trained_run.best, "--out", old, "--force"), "No space left")
    assert snapshot(tmp_path) == before


def test_export_onnx_writes_one_graph_that_runs(trained_run, tmp_path):
    """The CLI route to the ONNX step (tests/export/test_onnx.py checks its numbers in depth)."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np
    import torch

    from chargen import load_model

    out = tmp_path / "poem.onnx"
    result = invoke("export", trained_run.best, "--format", "onnx", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["poem.onnx"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    model, vocab, _ = load_model(trained_run.best)
    assert json.loads(meta["chargen.vocab"]) == list(vocab.chars)
    ids = vocab.encode("Up")  # (2,)
    zeros = np.zeros((2, 1, 16), np.float32)  # (L, B, H)
    logits, h, c = session.run(None, {"ids": ids[:1].numpy(), "h": zeros, "c": zeros})
    logits, h, c = session.run(None, {"ids": ids[1:].numpy(), "h": h, "c": c})
    with torch.no_grad():
        expected = model(ids[None])[0][0, -1]  # (V,)
    np.testing.assert_allclose(logits[0], expected.numpy(), atol=1e-4)


def test_export_web_writes_one_page_with_the_model_inside(trained_run, tmp_path):
    """The CLI route to the page (tests/export/test_web.py runs it in Chromium): one HTML file that
    loads nothing from outside and holds this model's facts and vocabulary."""
    out = tmp_path / "poem.html"
    result = invoke("export", trained_run.best, "--format", "web", "--out", out, "--title", "My <poem> model")
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["poem.html"] and "open " in result.stderr
    assert "warning" not in result.stderr  # a page of a few MB at most
    page = out.read_text(encoding="utf-8")
    assert "My &lt;poem&gt; model" in page and "poem.txt" in page
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    spec = json.loads(page.split('<script type="application/json" id="model">')[1].split("</script>")[0])
    from chargen import load_model
    _, vocab, _ = load_model(trained_run.best)
    assert spec["chars"] == list(vocab.chars) and spec["cell"] == "lstm" and spec["end"] is None


def test_exporting_a_folder_onto_itself_names_the_real_problem(trained_run, tmp_path, monkeypatch):
    """Guards against a hint that leads nowhere: exporting a folder with the default --out (its own
    name) must say it would replace the model, not suggest --force (which is refused anyway)."""
    monkeypatch.chdir(tmp_path)
    assert invoke("export", trained_run.best, "--out", "m").exit_code == 0
    assert_one_line_error(invoke("export", "m"), "would replace the checkpoint")
    assert_one_line_error(invoke("export", "m", "--force"), "would replace the checkpoint")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", WEIGHTS]


def test_ctrl_c_between_the_two_renames_keeps_the_earlier_export(trained_run, tmp_path, monkeypatch):
    """Guards against --force losing the earlier export: Ctrl-C after it was moved aside and before the new
    one took its place deleted it (the cleanup ran, the restore did not). It is put back; exit 130."""
    import chargen.export.writer as writer

    out = tmp_path / "m"
    assert invoke("export", trained_run.best, "--out", out).exit_code == 0
    before = snapshot(tmp_path)
    real, calls = writer.os.replace, []

    def replace(src, dst):
        calls.append(Path(dst).name)
        if len(calls) == 2:  # the new folder onto --out
            raise KeyboardInterrupt
        real(src, dst)
    monkeypatch.setattr(writer.os, "replace", replace)
    result = invoke("export", trained_run.best, "--out", out, "--force")
    monkeypatch.undo()
    assert (result.exit_code, result.stdout, result.stderr) == (130, "", "\ninterrupted\n")
    assert calls[1] == "m" and snapshot(tmp_path) == before


@pytest.mark.slow  # a 25 MB page: about 3 s
def test_a_page_past_20_mb_is_written_with_a_one_line_warning(tmp_path):
    """Guards against a 100 MB page (a GPU-recipe model) written without a word: the export says how big
    it is and what that means for a reader, in one line, even with --quiet; a small page gets none."""
    from chargen import CharRNN, ModelConfig, Vocab
    from chargen.training import Checkpoint
    from chargen.modelfile.folder import write_model_files

    vocab = Vocab.from_text("abc\n")
    config = ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=2, hidden_size=700, embedding_dim=8)
    (tmp_path / "big").mkdir()
    write_model_files(Checkpoint(config, vocab, CharRNN(config).state_dict(), None), tmp_path / "big")
    result = invoke("export", tmp_path / "big", "--format", "web", "--out", tmp_path / "big.html", "--quiet")
    assert result.exit_code == 0 and result.stdout == ""
    size = (tmp_path / "big.html").stat().st_size
    assert 20e6 < size < 30e6
    assert result.stderr == (f"warning: the page is {size / 1e6:.0f} MB: it takes seconds to open and is too big "
                             "for most mail; a smaller model (--hidden-size, --num-layers) makes a smaller page\n")


def test_the_readmes_page_command_makes_the_shipped_page_with_its_corpus_named(tmp_path):
    """Guards against the README's own export command giving a page that says "corpus: not recorded"
    (the shipped checkpoint predates the corpus record), and a docs page older than the page code:
    the command, as the README writes it, makes docs/assets/shakespeare-gru.html byte for byte."""
    import re
    import shlex

    root = Path(__file__).parents[2]
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())  # its lines joined
    command = re.search(r"`(chargen export checkpoints/shakespeare-gru/best\.pt --format web[^`]*)`", readme)
    args = shlex.split(command.group(1))[1:]
    args[args.index("--out") + 1] = str(tmp_path / "shakespeare.html")
    result = invoke(*[str(root / a) if a.startswith("checkpoints/") else a for a in args])
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "shakespeare.html").read_text(encoding="utf-8")
    assert "<dt>corpus</dt><dd>shakespeare.txt</dd>" in page
    assert page == (root / "docs" / "assets" / "shakespeare-gru.html").read_text(encoding="utf-8")
