"""`chargen prepare`: the summary it prints, the cache it leaves for `chargen train`, and bad input."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from chargen.cli import app
from chargen.data.vocab import UNKNOWN

runner = CliRunner()


def test_prepare_json_then_train_hits_the_cache(tmp_path, monkeypatch):
    """The JSON summary must describe the file exactly; a second prepare (and train) must be a cache hit."""
    monkeypatch.setenv("CHARGEN_CACHE", str(tmp_path / "cache"))
    text = "abc 가나\n" * 50 + "😀"
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    first = runner.invoke(app, ["prepare", str(path), "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["bytes"] == len(text.encode("utf-8")) and summary["characters"] == len(text)
    assert (summary["vocab_size"], summary["rare_characters"], summary["unknown_symbol"]) == \
        (len(set(text)) + 1, 0, UNKNOWN)
    assert summary["dtype"] == "uint8" and summary["cache_hit"] is False
    assert summary["cache"].startswith(str(tmp_path / "cache"))
    again = json.loads(runner.invoke(app, ["prepare", str(path), "--json"]).stdout)
    assert again["cache_hit"] is True and again["cache"] == summary["cache"]
    rare = json.loads(runner.invoke(app, ["prepare", str(path), "--json", "--min-char-count", "2"]).stdout)
    assert (rare["rare_characters"], rare["unknown_symbol"], rare["cache_hit"]) == (1, UNKNOWN, False)


def test_prepare_table_goes_to_stderr(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGEN_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "t.txt"
    path.write_text("hello world\n" * 10, encoding="utf-8")
    result = runner.invoke(app, ["prepare", str(path)])
    assert result.exit_code == 0 and result.stdout == ""
    assert "Prepared corpus" in result.stderr and "vocab size" in result.stderr


def test_prepare_bad_input_is_one_line_exit_1(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGEN_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\xffno")
    cases = [(bad, "is not UTF-8 text (bad byte at offset 2)"), (tmp_path / "missing.txt", "corpus not found")]
    for path, message in cases:
        result = runner.invoke(app, ["prepare", str(path)])
        assert result.exit_code == 1 and result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0] and "(hint: " in lines[0]
    result = runner.invoke(app, ["prepare", str(bad), "--min-char-count", "0"])
    assert result.exit_code == 1 and "min_char_count must be a positive integer" in result.stderr
