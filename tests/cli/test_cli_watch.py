"""`chargen train` watching itself learn: each evaluation's sample on stderr (never stdout, not with
--quiet or --json), --sample-chars and --tensorboard, and how they pass through a resume."""
from __future__ import annotations

import json
import sys

from test_cli import TINY, invoke

from chargen.cli.watch import sample_lines


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def block(record: dict) -> str:
    """What the terminal shows for one evaluation."""
    return (f"step {record['step']}  val {record['val_loss']:.3f} nats/char ({record['val_bpc']:.3f} bpc)  sample:\n"
            f"{sample_lines(record['sample'])}\n")


def test_each_sample_goes_to_stderr_as_recorded(tmp_path, corpus_file):
    """Guards against a sample on stdout (it would corrupt `> file` and pipes) or one that differs from the
    log: stdout stays empty, and stderr shows each evaluation's sample, as metrics.jsonl holds it, in order."""
    result = invoke("train", corpus_file, *TINY, "--sample-chars", "30", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    records = metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [5, 10] and all(len(r["sample"]) == 30 for r in records)
    shown = [result.stderr.index(block(r)) for r in records]
    assert shown == sorted(shown) and shown[-1] < result.stderr.index("Training summary")


def test_quiet_and_json_show_no_sample_but_record_it(tmp_path, corpus_file):
    """Guards against --quiet that still talks, and samples that --json's scripts must filter: both leave
    stderr empty (--json's stdout is its one JSON line), while metrics.jsonl still holds the samples."""
    quiet = invoke("train", corpus_file, *TINY, "--sample-chars", "30", "--quiet", "--out", tmp_path / "q")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    as_json = invoke("train", corpus_file, *TINY, "--sample-chars", "30", "--json", "--out", tmp_path / "j")
    assert as_json.exit_code == 0 and as_json.stderr == ""
    assert json.loads(as_json.stdout)["steps"] == 10
    for run in ("q", "j"):
        assert [len(r["sample"]) for r in metrics(tmp_path / run)] == [30, 30]


def test_sample_chars_zero_draws_nothing(tmp_path, corpus_file):
    """--sample-chars 0 turns the samples off: none on stderr, no "sample" in metrics.jsonl."""
    result = invoke("train", corpus_file, *TINY, "--sample-chars", "0", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    assert "sample:" not in result.stderr and "Training summary" in result.stderr
    assert all("sample" not in r for r in metrics(tmp_path / "run"))


def test_a_resume_takes_the_watch_flags_without_a_warning(tmp_path, corpus_file):
    """Guards against a resume that ignores (and warns about) --sample-chars and --tensorboard: they only
    watch the run, so the resumed part draws samples of the new length and writes events."""
    assert invoke("train", corpus_file, *TINY, "--sample-chars", "0", "-q", "--out", tmp_path / "run").exit_code == 0
    resumed = invoke("train", corpus_file, "--out", tmp_path / "run", "--resume", "--max-steps", "15",
                     "--sample-chars", "20", "--tensorboard", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.stderr == ""
    assert [len(r.get("sample", "")) for r in metrics(tmp_path / "run")] == [0, 0, 20]
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_tensorboard_without_the_package_is_one_error_line(tmp_path, corpus_file, monkeypatch):
    """Without the tensorboard package, --tensorboard exits 1 with one line naming the extra to install,
    before anything is trained or written."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = invoke("train", corpus_file, *TINY, "--tensorboard", "--out", tmp_path / "run")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("error: --tensorboard needs the tensorboard package, which is not installed "
                             "(hint: pip install 'chargen[tensorboard]', or train without --tensorboard)\n")
    assert not (tmp_path / "run").exists()


def test_bad_sample_chars_is_one_error_line(tmp_path, corpus_file):
    """A negative --sample-chars is a domain error naming the flag, not a traceback."""
    result = invoke("train", corpus_file, *TINY, "--sample-chars", "-5", "--out", tmp_path / "run")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error: sample_chars must be an integer from 0 to 100000, got -5")
    assert "--sample-chars" in result.stderr and len(result.stderr.splitlines()) == 1


def test_sample_lines_keep_the_terminal_safe():
    """Guards against a corpus's control characters (an escape sequence, a carriage return) reaching the
    terminal raw: they are written as escapes; newlines start indented lines; tabs and any other Unicode
    (accents, CJK, a no-break space) pass unchanged."""
    assert sample_lines("a\x1b[31mb\rc\n\tdé\u00a0漢\x7f") == "  a\\x1b[31mb\\rc\n  \tdé\u00a0漢\\x7f"


def test_a_run_that_wrote_events_goes_on_writing_them_on_a_plain_resume(tmp_path, corpus_file):
    """Guards against curves that stop unasked: `--resume` without --tensorboard keeps the run's events."""
    assert invoke("train", corpus_file, *TINY, "--tensorboard", "-q", "--out", tmp_path / "run").exit_code == 0
    before = sorted((tmp_path / "run" / "tensorboard").iterdir())
    resumed = invoke("train", corpus_file, "--out", tmp_path / "run", "--resume", "--max-steps", "15", "-q")
    assert resumed.exit_code == 0, resumed.stderr
    assert len(sorted((tmp_path / "run" / "tensorboard").iterdir())) == len(before) + 1
