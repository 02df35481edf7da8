"""`chargen train --records`, and `sample` and `eval` on a records model, through typer's CliRunner:
exact stdout, the notes and reports on stderr, one-line errors."""
from __future__ import annotations

import io
import json
import shutil

import pytest
from test_cli import TINY, assert_domain_error, invoke

from chargen import RecordSample, SampleConfig, load_model, read_checkpoint, sample_records
from chargen.sample.output import write_records

NAMES = [a + b + c for a in ("Ka", "Lo", "Mi", "Ra", "Su") for b in ("ne", "to", "ri", "va", "mo")
         for c in ("", "x", "lin")]  # 75 records


@pytest.fixture(scope="module")
def records_run(tmp_path_factory):
    """One tiny GRU trained on NAMES with --records lines; read its files, never write into its folder."""
    root = tmp_path_factory.mktemp("records")
    corpus = root / "names.txt"
    corpus.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    result = invoke("train", corpus, *TINY, "--records", "lines", "--batch-size", "4", "--max-steps", "40",
                    "--eval-every", "20", "--lr", "0.03", "--out", root / "run", "--json")
    assert result.exit_code == 0, result.stderr
    return corpus, root / "run", json.loads(result.stdout)


def test_train_records_summary_and_checkpoint(records_run):
    """The summary counts the records of each part; the checkpoint keeps the mode for sample and eval."""
    corpus, run, summary = records_run
    assert summary["records_train"] + summary["records_val"] == len(NAMES) and summary["records_skipped"] == 0
    assert summary["records_val"] >= 1 and summary["steps"] == 40
    state = read_checkpoint(run / "best.pt")
    assert (state["train_config"]["records"], state["run_state"]["corpus"]) == ("lines", str(corpus.resolve()))


def test_train_notes_what_it_skipped(tmp_path):
    """Lines of a jsonl corpus without the field are counted on stderr before training (not with --quiet)."""
    corpus = tmp_path / "n.jsonl"
    corpus.write_text("".join(json.dumps({"name": n}) + "\n" for n in NAMES) + "oops\n{\"x\": 1}\n", encoding="utf-8")
    args = ["train", corpus, *TINY, "--records", "jsonl:name", "--max-steps", "2", "--json"]
    result = invoke(*args, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.stderr
    assert "note: skipped 2: lines are not JSON objects with a non-empty string 'name'\n" in result.stderr
    assert json.loads(result.stdout)["records_skipped"] == 2
    assert invoke(*args, "--out", tmp_path / "b", "--quiet").stderr == ""


def test_one_giant_record_is_one_error_line(tmp_path):
    corpus = tmp_path / "book.txt"
    corpus.write_text("no blank line here " * 300, encoding="utf-8")
    result = invoke("train", corpus, *TINY, "--records", "paragraphs", "--out", tmp_path / "run")
    assert_domain_error(result, "no record of at most 4,000 characters", "train without --records")


def test_bad_records_mode_is_a_domain_error(tmp_path):
    result = invoke("train", tmp_path / "x.txt", *TINY, "--records", "csv", "--out", tmp_path / "run")
    assert_domain_error(result, "unknown records mode 'csv'", "jsonl:FIELD")


def test_sample_prints_one_record_per_line(records_run):
    """--num-samples N prints exactly the N records the library draws, one per line, each begun by
    --prime; nothing on stderr."""
    _, run, _ = records_run
    model, vocab, _ = load_model(run / "best.pt")
    expected = sample_records(model, vocab, SampleConfig(length=30, seed=3, num_samples=6, prime="K"))
    result = invoke("sample", run / "best.pt", "--num-samples", "6", "--seed", "3", "--length", "30", "--prime", "K")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(r + "\n" for r in expected.records) and result.stderr == ""
    assert all(r.startswith("K") for r in expected.records)
    jsonl = invoke("sample", run / "best.pt", "--num-samples", "6", "--seed", "3", "--length", "30", "--prime", "K",
                   "--jsonl")
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == \
        [{"sample": i + 1, "text": r, "ended": e} for i, (r, e) in enumerate(zip(expected.records, expected.ended))]


def test_unique_leaves_out_training_records_and_reports(records_run, tmp_path):
    """--unique prints only records not in the corpus, says on stderr what it dropped, and fails in one
    line when the corpus has gone; on a stream model it is refused."""
    corpus, run, _ = records_run
    result = invoke("sample", run / "best.pt", "--num-samples", "8", "--seed", "1", "--temp", "0.5", "--unique")
    assert result.exit_code == 0, result.stderr
    printed = result.stdout.splitlines()
    assert len(printed) == len(set(printed)) and not set(printed) & set(NAMES)
    assert result.stderr.startswith("--unique dropped ") and "in the training corpus" in result.stderr
    moved = tmp_path / "elsewhere.txt"
    shutil.move(corpus, moved)
    try:
        gone = invoke("sample", run / "best.pt", "--unique", "--seed", "1")
        assert_domain_error(gone, "training corpus, which is gone", "without --unique")
    finally:
        shutil.move(moved, corpus)


def test_unique_and_interactive_need_the_right_kind_of_model(records_run, trained_run):
    _, run, _ = records_run
    assert_domain_error(invoke("sample", trained_run.best, "--unique"), "needs a model trained on records")
    assert_domain_error(invoke("sample", run / "best.pt", "-i"), "--interactive", "drop --interactive")


@pytest.mark.parametrize("mode, jsonl, expected", [
    ("lines", False, "Ann\nBo\n"),
    ("paragraphs", False, "Ann\nis\n\nBo\n"),
    ("jsonl:name", False, '{"name": "Ann\\nis"}\n{"name": "Bo"}\n'),
    ("paragraphs", True, '{"sample": 1, "text": "Ann\\nis", "ended": true}\n'
                         '{"sample": 2, "text": "Bo", "ended": false}\n'),
])
def test_records_are_written_as_their_corpus_holds_them(mode, jsonl, expected):
    """Guards against output that cannot be read back as a corpus of the same mode: paragraphs a
    blank line apart, jsonl records as objects with the model's field."""
    records = ["Ann", "Bo"] if mode == "lines" else ["Ann\nis", "Bo"]
    out = io.StringIO()
    write_records(RecordSample(records, [True, False], 2), mode, out, jsonl)
    assert out.getvalue() == expected


def test_eval_scores_records_as_training_did(records_run):
    """eval --split val on a records model must give best.pt's validation loss (whole records from a
    zero state, the same hashed split), and refuse --window."""
    corpus, run, _ = records_run
    best = read_checkpoint(run / "best.pt")
    result = invoke("eval", run / "best.pt", corpus, "--split", "val", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows["loss"] == pytest.approx(best["best_val_loss"], abs=1e-4)
    whole = json.loads(invoke("eval", run / "best.pt", corpus, "--json").stdout)
    assert whole["records"] == len(NAMES) > rows["records"] >= 1
    assert whole["chars"] == sum(len(n) + 1 for n in NAMES)
    assert_domain_error(invoke("eval", run / "best.pt", corpus, "--window", "8"), "record by record")


@pytest.mark.parametrize("extra, needles", [
    (["--vocab", "bytes"], ("--records reads text", "--vocab chars")),
    (["--val-files", "2"], ("--val-files splits a corpus of several files", "drop --val-files")),
])
def test_records_refuse_what_they_cannot_do(tmp_path, extra, needles):
    corpus = tmp_path / "names.txt"
    corpus.write_text("anna\nbob\ncarla\n" * 30, encoding="utf-8")
    result = invoke("train", corpus, *TINY, "--records", "lines", *extra, "--out", tmp_path / "run")
    assert_domain_error(result, *needles)
    assert not (tmp_path / "run").exists()


def test_records_refuse_several_files(tmp_path):
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("anna\nbob\n" * 30, encoding="utf-8")
    result = invoke("train", tmp_path / "a.txt", tmp_path / "b.txt", *TINY, "--records", "lines",
                    "--out", tmp_path / "run")
    assert_domain_error(result, "--records reads one file", "join the records into one file")


def test_unique_on_an_exported_folder_says_why_it_cannot(records_run, tmp_path):
    """The folder leaves out the trainer's corpus path, so --unique cannot read the corpus: one line
    that says so and where --unique works, not a traceback or a misleading 'file gone'."""
    _, run, _ = records_run
    assert invoke("export", run / "best.pt", "--out", tmp_path / "names", "-q").exit_code == 0
    assert invoke("sample", tmp_path / "names", "--num-samples", 2, "--seed", 1).exit_code == 0
    result = invoke("sample", tmp_path / "names", "--num-samples", 2, "--unique")
    assert_domain_error(result, "does not name the corpus", "run's best.pt")


def test_identical_records_all_fall_on_one_side(tmp_path):
    """Guards against 500 identical records putting one copy in validation and 499 in training (scoring
    text the model trained on): when the rule falls back to the record of the lowest hash, every copy of
    it validates ('Mira' hashes lowest here, above --val-frac's share)."""
    corpus = tmp_path / "same.txt"
    corpus.write_text("Mira\n" * 500 + "Rato\nKane\n", encoding="utf-8")
    result = invoke("train", corpus, *TINY, "--records", "lines", "--max-steps", "2", "--out", tmp_path / "r",
                    "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["records_train"], summary["records_val"]) == (2, 500)


def test_lone_surrogates_and_deep_nesting_are_skipped_and_counted(tmp_path):
    """Guards against a JSON line holding a lone surrogate (a cut emoji, "\\ud83d") or nested too deeply
    crashing train and eval with a traceback: each such line is left out and counted on stderr."""
    corpus = tmp_path / "n.jsonl"
    lines = [json.dumps({"name": n}) for n in NAMES]
    lines[3:3] = ['{"name": "cut \\ud83d"}', '{"name": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke("train", corpus, *TINY, "--records", "jsonl:name", "--max-steps", "2", "--out", tmp_path / "r",
                    "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ("note: skipped 1: lines are not JSON objects with a non-empty string 'name'\n"
                             "note: skipped 1: records hold a lone surrogate such as \\ud83d (half of a cut "
                             "character): not text\n")
    summary = json.loads(result.stdout)
    assert (summary["records_skipped"], summary["records_train"] + summary["records_val"]) == (2, len(NAMES))
    scored = invoke("eval", tmp_path / "r" / "last.pt", corpus, "--split", "val", "--json")
    assert scored.exit_code == 0, scored.stderr
    assert json.loads(scored.stdout)["records"] == summary["records_val"]
