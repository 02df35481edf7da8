"""Your own data through the command line: `train` and `prepare` on folders, globs and --include/--exclude,
--vocab bytes for any file, and every command that reads a bytes model (sample, --raw, info, eval, cells,
gradflow, compare): exact exit codes, streams and values."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import SampleConfig, load_model, read_checkpoint
from chargen.cli import app
from chargen.cli.terminal import unescape
from chargen.data import FILE_SEPARATOR
from chargen.sample import Sampler, generate_ids
from chargen.study.gradflow import gradient_flow_report
from chargen.training import evaluate_carried

runner = CliRunner()  # this typer keeps result.stdout and result.stderr apart
TINY = ["--cell", "gru", "--layers", "1", "--hidden-size", "7", "--embedding-dim", "5", "--batch-size", "3",
        "--seq-len", "10", "--max-steps", "6", "--max-time", "0", "--eval-every", "3", "--save-every", "3",
        "--warmup-steps", "2", "--device", "cpu"]
LATIN1 = "Ça a été très naïve, garçon: « déjà vu » à Noël.\n".encode("latin-1") * 20


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_error_line(result, *needles: str) -> str:
    """Exit 1, nothing on stdout, one 'error: ... (hint: ...)' line on stderr holding every needle."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "(hint: " in line
    assert all(n in line for n in needles), line
    return line


@pytest.fixture(scope="module")
def bytes_run(tmp_path_factory) -> Path:
    """A tiny GRU trained with --vocab bytes on a Latin-1 file; its best.pt."""
    root = tmp_path_factory.mktemp("bytes")
    (root / "latin.txt").write_bytes(LATIN1)
    result = invoke("train", root / "latin.txt", *TINY, "--vocab", "bytes", "--out", root / "run", "--json")
    assert result.exit_code == 0, result.stderr
    return root / "run" / "best.pt"


def folder(root: Path) -> Path:
    for i in range(6):
        (root / "poems" / f"sub{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / "poems" / f"sub{i % 2}" / f"p{i}.txt").write_text("Twinkle twinkle little star\n" * 5)
    (root / "poems" / "notes.md").write_text("not a poem \u00a7\n")
    return root / "poems"


# -- many files -------------------------------------------------------------------------------
def test_train_a_folder_with_include_then_resume(tmp_path, monkeypatch):
    """`chargen train FOLDER --include '*.txt'` names the run after the folder and learns only the chosen
    files (with the separator); `--resume` finds that run from the same arguments and goes on."""
    monkeypatch.chdir(tmp_path)
    poems = folder(tmp_path)
    first = invoke("train", poems, "--include", "*.txt", *TINY, "--json")
    assert first.exit_code == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["run_dir"] == str(Path("checkpoints/poems-gru")) and summary["steps"] == 6
    _, vocab, ckpt = load_model(Path(summary["run_dir"]) / "last.pt")
    assert FILE_SEPARATOR in vocab.chars and "\u00a7" not in vocab.chars and vocab.kind == "chars"
    again = invoke("train", poems, "--include", "*.txt", "--resume", "--max-steps", "9", "--json", "--quiet")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["run_dir"] == summary["run_dir"] and json.loads(again.stdout)["steps"] == 9


def test_prepare_a_glob_and_several_paths(tmp_path, monkeypatch):
    """`chargen prepare` takes several paths and quoted patterns; its summary counts the files and bytes."""
    monkeypatch.chdir(tmp_path)
    poems = folder(tmp_path)
    (tmp_path / "extra.txt").write_text("one more\n")
    result = invoke("prepare", "poems/**/*.txt", "extra.txt", "--exclude", "p5.txt", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    sizes = [f.stat().st_size for f in poems.rglob("p*.txt") if f.name != "p5.txt"] + [9]
    assert (summary["files"], summary["bytes"], summary["characters"]) == (6, sum(sizes), sum(sizes) + 6)
    assert summary["vocab"] == "chars" and summary["corpus"] == "poems/**/*.txt extra.txt"


@pytest.mark.parametrize("case, needle", [
    ("empty", "holds no files"), ("glob", "no file matches"), ("filtered", "leave none of the"),
    ("latin1", "--vocab bytes"),
])
def test_bad_corpora_are_one_line_errors(tmp_path, case, needle):
    """An empty folder, a pattern that matches nothing, patterns that leave no file, a file that is not
    UTF-8 (the hint names --vocab bytes): exit 1 with one line, and no run folder."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "latin.txt").write_bytes(LATIN1)
    poems = folder(tmp_path)
    args = {"empty": [tmp_path / "empty"], "glob": [tmp_path / "*.xyz"], "latin1": [tmp_path / "latin.txt"],
            "filtered": [poems, "--include", "*.py", "--exclude", "*.md"]}[case]
    one_error_line(invoke("train", *args, *TINY, "--out", tmp_path / "run"), needle)
    assert not (tmp_path / "run").exists()
    one_error_line(invoke("prepare", *args), needle)


def test_stop_escapes_name_the_file_separator():
    """--stop '\\x1c' must be the separator itself, so a sample can end with the first generated file."""
    assert unescape("\\x1c") == FILE_SEPARATOR and unescape("a\\nb\\t\\x41") == "a\nb\tA"
    assert unescape("\\x5cn") == "\\n"  # an escaped backslash before 'n' stays a backslash and an 'n'


# -- a bytes model in every command -----------------------------------------------------------
def test_info_shows_the_vocabulary_kind(bytes_run):
    rows = json.loads(invoke("info", bytes_run, "--json").stdout)
    assert (rows["vocab"], rows["vocab_size"], rows["unknown_symbol"], rows["format_version"]) == ("bytes", 256,
                                                                                                  None, 4)
    assert rows["train_config"]["vocab"] == "bytes"


def test_sample_raw_writes_exactly_the_drawn_bytes(bytes_run):
    """--raw: stdout's bytes are the prime's UTF-8 bytes followed by the drawn ids, nothing else; the same
    draw as text is those bytes decoded with U+FFFD and a final newline."""
    model, vocab, _ = load_model(bytes_run)
    cfg = SampleConfig(length=120, temperature=1.0, seed=4, prime="à")
    drawn = bytes(int(i) for i in generate_ids(model, vocab, cfg))
    raw = invoke("sample", bytes_run, "--raw", "--length", 120, "--seed", 4, "--prime", "à")
    assert raw.exit_code == 0, raw.stderr
    assert raw.stdout_bytes == "à".encode() + drawn
    text = invoke("sample", bytes_run, "--length", 120, "--seed", 4, "--prime", "à")
    assert text.exit_code == 0 and text.stdout == "à" + drawn.decode("utf-8", "replace") + "\n"
    several = invoke("sample", bytes_run, "--raw", "--length", 30, "--seed", 4, "--num-samples", 2)
    assert several.exit_code == 0 and several.stdout_bytes.startswith(b"----- sample 1 -----\n")
    assert several.stdout_bytes.count(b"----- sample ") == 2


def test_sample_raw_refusals(trained_run, bytes_run):
    """--raw from a chars model, or with --jsonl, is one line saying why."""
    one_error_line(invoke("sample", trained_run.best, "--raw"), "bytes vocabulary", "drop --raw")
    one_error_line(invoke("sample", bytes_run, "--raw", "--jsonl"), "--raw writes bytes")


def test_sample_prime_file_of_any_bytes(tmp_path, bytes_run):
    """A bytes model takes a --prime-file that is not UTF-8: --raw echoes it byte for byte, text shows it
    decoded with U+FFFD."""
    prime = tmp_path / "p.bin"
    prime.write_bytes(b"na\xefve ")
    raw = invoke("sample", bytes_run, "--prime-file", prime, "--raw", "--length", 5, "--seed", 1)
    assert raw.exit_code == 0, raw.stderr
    assert raw.stdout_bytes.startswith(b"na\xefve ") and len(raw.stdout_bytes) == 6 + 5
    text = invoke("sample", bytes_run, "--prime-file", prime, "--length", 5, "--seed", 1, "--temp", 0)
    assert text.exit_code == 0 and text.stdout.startswith("na\ufffdve ")


def test_eval_scores_a_latin1_file_with_a_bytes_model(tmp_path, bytes_run):
    """`chargen eval` reads any file for a bytes model: the loss of its bytes, as the library computes it."""
    path = tmp_path / "l.txt"
    path.write_bytes(LATIN1[:300])
    result = invoke("eval", bytes_run, path, "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    model, _, _ = load_model(bytes_run)
    want = evaluate_carried(model, torch.tensor(list(LATIN1[:300])), torch.device("cpu"))
    assert rows["chars"] == want.chars > 250 and rows["loss"] == round(want.loss, 4)


def test_gradflow_and_cells_read_bytes(tmp_path, bytes_run):
    """gradflow takes the first max-lag + 2 bytes of a file that is not UTF-8; cells steps through its
    bytes, one label per byte."""
    path = tmp_path / "l.txt"
    path.write_bytes(LATIN1[:400])
    flow = invoke("gradflow", bytes_run, "--text", path, "--max-lag", 12, "--json")
    assert flow.exit_code == 0, flow.stderr
    model, vocab, _ = load_model(bytes_run)
    want = gradient_flow_report(model, torch.tensor(list(LATIN1[:14])), 12, max_norm=1.0)
    assert json.loads(flow.stdout)[0]["norms"] == pytest.approx(want["norms"], rel=1e-6)
    cells = invoke("cells", bytes_run, "--text", path, "--max-chars", 200, "--json", "--out", tmp_path / "c.html")
    assert cells.exit_code == 0, cells.stderr
    report = json.loads(cells.stdout)
    assert report["chars"] == 200 and report["unknown"] == []  # 200 Latin-1 bytes: 200 steps, none unknown


def test_compare_with_bytes(tmp_path):
    """`chargen compare --vocab bytes` trains byte models on a file that is not UTF-8 and samples each."""
    (tmp_path / "l.txt").write_bytes(LATIN1)
    result = invoke("compare", tmp_path / "l.txt", "--vocab", "bytes", "--cells", "rnn", "--max-time", 0,
                    "--max-steps", 3, "--hidden-size", 6, "--embedding-dim", 4, "--num-layers", 1, "--batch-size",
                    2, "--seq-len", 8, "--eval-every", 3, "--sample-length", 40, "--device", "cpu",
                    "--out", tmp_path / "cmp", "--json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["cell"] == "rnn" and math.isfinite(row["best_val_loss"]) and isinstance(row["sample"], str)
    assert read_checkpoint(tmp_path / "cmp" / "rnn" / "best.pt")["vocab_kind"] == "bytes"


def test_interactive_with_a_bytes_model(bytes_run):
    """-i with a bytes model: each typed prime (UTF-8) is echoed and continued with valid text, the state
    carried from turn to turn, as the library's Sampler draws it."""
    model, vocab, _ = load_model(bytes_run)
    sampler = Sampler(model, vocab, SampleConfig(length=25, temperature=1.0, seed=8))
    turns = []
    for prime in ("à", "é"):
        sampler.feed(prime)
        turns.append(prime + vocab.decode([int(i) for i in sampler.draw(25)]) + "\n")
    result = runner.invoke(app, ["sample", str(bytes_run), "-i", "--length", "25", "--seed", "8"],
                           input="à\né\n/quit\n")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(turns)


# -- the run's own corpus, again --------------------------------------------------------------
def several(root: Path) -> Path:
    """Five text files of different lengths and a note with a character the texts lack."""
    for i, word in enumerate(["alpha", "beta", "gamma", "delta", "epsilon"]):
        (root / "docs" / f"d{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / f"d{i}.txt").write_text(f"{word} tells a tale\n" * (4 + 3 * i))
    (root / "docs" / "zz-notes.md").write_text("notes \u00a7 apart\n")
    return root / "docs"


def test_eval_split_val_scores_exactly_what_the_run_validated_on(tmp_path, monkeypatch):
    """Guards against `eval --split val` on a run over several files scoring the last tenth of the
    characters (and every file, --include forgotten): it scores the run's held-out file under the run's
    patterns, so its figure is the run's own last val_loss in metrics.jsonl."""
    monkeypatch.chdir(tmp_path)
    docs = several(tmp_path)
    trained = invoke("train", docs, "--include", "*.txt", *TINY, "--out", tmp_path / "run", "--json")
    assert trained.exit_code == 0, trained.stderr
    last = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["step"] == 6
    for extra in ([], ["--include", "*.txt"]):
        scored = invoke("eval", tmp_path / "run" / "last.pt", docs, *extra, "--split", "val", "--json")
        assert scored.exit_code == 0, scored.stderr
        rows = json.loads(scored.stdout)
        assert rows["loss"] == round(last["val_loss"], 4)
        held_out = len("epsilon tells a tale\n") * 16 + 1  # the last file and its separator: 337 ids
        assert rows["chars"] == (held_out // 16 - 1) * 16 and scored.stderr == ""  # 16 streams, each's first unscored


def test_resume_without_include_reads_the_runs_files_and_the_card_names_them(tmp_path, monkeypatch):
    """Guards against --include/--exclude being forgotten by the run: a resume without them read every
    file ('characters differ'), and the model card's command left them out."""
    monkeypatch.chdir(tmp_path)
    docs = several(tmp_path)
    first = invoke("train", docs, "--include", "*.txt", "--exclude", "d0.txt", *TINY, "--out", "run", "--json")
    assert first.exit_code == 0, first.stderr
    again = invoke("train", docs, "--resume", "--out", "run", "--max-steps", 9, "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["steps"] == 9 and again.stderr == ""
    state = read_checkpoint(tmp_path / "run" / "last.pt")["run_state"]
    assert (state["include"], state["exclude"]) == (["*.txt"], ["d0.txt"])
    exported = invoke("export", "run/last.pt", "--out", "folder", "--json")
    assert exported.exit_code == 0, exported.stderr
    card = (tmp_path / "folder" / "README.md").read_text()
    assert "--include '*.txt' --exclude d0.txt" in card


def test_resume_on_a_changed_corpus_warns(tmp_path, monkeypatch):
    """Guards against a resume on a corpus that changed but kept its characters going on silently: one
    warning line on stderr gives both sizes, and the run goes on."""
    monkeypatch.chdir(tmp_path)
    text = "Twinkle twinkle little star\n" * 20
    (tmp_path / "t.txt").write_text(text)
    assert invoke("train", "t.txt", *TINY, "--out", "run", "--json").exit_code == 0
    (tmp_path / "t.txt").write_text(text + "little star\n")
    again = invoke("train", "t.txt", "--resume", "--out", "run", "--max-steps", 9, "--json")
    assert again.exit_code == 0, again.stderr
    assert again.stderr == ("warning: the corpus now has 572 characters and the run was trained on 560: it changed "
                            "since, and the run goes on with the text as it is now\n")
    same = invoke("train", "t.txt", "--resume", "--out", "run", "--max-steps", 12, "--json")
    assert same.exit_code == 0 and same.stderr == ""


def test_a_binary_file_in_a_folder_is_named_with_an_exclude_hint(tmp_path):
    """Guards against a PNG among notes stopping the run with a hint to convert it with iconv: the message
    names the file as binary and the hint gives the --exclude that leaves it out (which then trains)."""
    docs = several(tmp_path)
    (docs / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    line = one_error_line(invoke("train", docs, *TINY, "--out", tmp_path / "run"))
    assert line == (f"error: {docs / 'pic.png'} is a binary file, not text (it holds a NUL byte in its first "
                    "8 KB) (hint: leave it out with --exclude pic.png (every *.png file: --exclude '*.png'), "
                    "or train on bytes with --vocab bytes)")
    assert invoke("train", docs, "--exclude", "*.png", *TINY, "--out", tmp_path / "run", "--json").exit_code == 0


def test_a_latin1_file_among_utf8_ones_is_named_with_an_exclude_of_itself(tmp_path):
    """A Latin-1 file in a folder of .txt files: the hint's --exclude names that file, not '*.txt' (which
    would leave out every file)."""
    docs = several(tmp_path)
    (docs / "old.txt").write_bytes(LATIN1)
    line = one_error_line(invoke("train", docs, *TINY, "--out", tmp_path / "run"))
    assert line == (f"error: {docs / 'old.txt'} is not UTF-8 text (bad byte at offset 0) (hint: convert it first, "
                    "e.g. iconv -f latin1 -t utf-8 IN > OUT, leave it out with --exclude old.txt, or train on its "
                    "bytes with --vocab bytes)")
