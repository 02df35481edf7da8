"""`chargen sample` with what a user types that a model reads in its own way: a --stop byte for a bytes
model, a --prime byte that is not UTF-8, and a records model whose record is empty. The models here are
built by hand so that greedy sampling draws one known symbol every time."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import CharRNN, Checkpoint, ModelConfig, TrainConfig, Vocab
from chargen.cli import app
from chargen.data import RECORD_END


def invoke(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def forced_model(path: Path, vocab: Vocab, favourite: str, records: str = "") -> Path:
    """A checkpoint whose model draws `favourite` at every step at temperature 0 (zero weights, one bias up)."""
    config = ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=6, embedding_dim=5, dropout=0.0)
    model = CharRNN(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.head.bias[vocab.chars.index(favourite)] = 10.0
    train = TrainConfig(max_steps=1, records=records) if records else None
    Checkpoint(config, vocab, model.state_dict(), train).save(path)
    return path


@pytest.fixture
def e9_model(tmp_path) -> Path:
    """A bytes model that draws the byte 0xE9 (not UTF-8 alone) again and again."""
    return forced_model(tmp_path / "e9.pt", Vocab.for_bytes(), "\xe9")


@pytest.mark.parametrize("extra, stdout", [
    ([], "\ufffd\n"),
    (["--num-samples", 2], "----- sample 1 -----\n\ufffd\n\n----- sample 2 -----\n\ufffd\n"),
    (["--jsonl", "--num-samples", 2], '{"sample": 1, "text": "\ufffd"}\n{"sample": 2, "text": "\ufffd"}\n'),
])
def test_stop_xhh_is_the_byte_hh_for_a_bytes_model(e9_model, extra, stdout):
    """Guards against --stop '\\xe9' on a bytes model looking for U+00E9's two UTF-8 bytes, which never
    match the byte 0xE9 the model draws: the sample ends right after the first byte 0xE9."""
    result = invoke("sample", e9_model, "--temp", 0, "--length", 20, "--stop", "\\xe9", *extra)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == stdout


def test_stop_xhh_ends_raw_bytes_at_the_byte(e9_model):
    result = invoke("sample", e9_model, "--temp", 0, "--length", 20, "--stop", "\\xe9", "--raw", "--prime", "ab")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == b"ab\xe9"


def test_a_prime_byte_that_is_not_utf8_is_one_line_for_a_chars_model(trained_run):
    """Guards against a crash (UnicodeEncodeError) on `--prime $'caf\\xe9'` from a Latin-1 terminal, which
    Python hands over as the lone surrogate U+DCE9; a bytes model would read it as the byte it is."""
    result = invoke("sample", trained_run.best, "--prime", "caf\udce9", "--length", 5)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == ("error: --prime holds b'\\xe9', a byte that is not UTF-8, at character 4 (hint: pass "
                             "it as UTF-8 text: check the terminal's encoding, e.g. LANG=C.UTF-8)\n")


def test_the_same_byte_primes_a_bytes_model(e9_model):
    result = invoke("sample", e9_model, "--prime", "caf\udce9", "--length", 1, "--temp", 0, "--raw")
    assert (result.exit_code, result.stdout_bytes) == (0, b"caf\xe9\xe9")


@pytest.fixture
def empty_records_model(tmp_path) -> Path:
    """A records model that ends every record at once: it draws the end symbol first."""
    return forced_model(tmp_path / "r.pt", Vocab.from_text("ab\n" + RECORD_END), RECORD_END, records="lines")


def test_empty_records_are_counted_and_named(empty_records_model):
    """Guards against empty records passing as samples unsaid (an empty line each): an empty record is a real
    outcome, so it is kept as one of --num-samples, and one stderr line says how many there are."""
    result = invoke("sample", empty_records_model, "--temp", 0, "--num-samples", 3, "--length", 10)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "\n\n\n"
    assert result.stderr == "note: 3 of the 3 records are empty (the model drew the end of the record first)\n"
    jsonl = invoke("sample", empty_records_model, "--temp", 0, "--num-samples", 2, "--jsonl", "--quiet")
    assert [json.loads(line) for line in jsonl.stdout.splitlines()] == [{"sample": i, "text": "", "ended": True}
                                                                        for i in (1, 2)]
    assert jsonl.stderr == ""


def test_a_record_after_a_prime_is_not_empty(empty_records_model):
    result = invoke("sample", empty_records_model, "--temp", 0, "--num-samples", 2, "--prime", "ab")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "ab\nab\n", "")


def test_a_bytes_records_model_stops_on_bytes_and_shows_a_raw_prime(tmp_path):
    """A bytes records model: the stop found in the bytes, a prime byte that is not UTF-8 shown as U+FFFD
    (written as is, it crashed the UTF-8 stdout)."""
    path = forced_model(tmp_path / "br.pt", Vocab.for_bytes(), "\xe9", records="lines")
    result = invoke("sample", path, "--temp", 0, "--prime", "x\udce9", "--stop", "\\xe9", "--length", 9)
    assert (result.exit_code, result.stdout) == (0, "x\ufffd\ufffd\n"), result.stderr


def test_an_interactive_line_that_is_not_utf8_is_one_error_line(trained_run, capsys):
    """Guards against a warning that names the byte as an unknown character before the error about it:
    a line read from a pipe in a non-UTF-8 locale is refused in one line, and the session goes on."""
    import io

    from chargen import SampleConfig, load_model
    from chargen.cli.terminal import interact
    from chargen.sample import Sampler

    model, vocab, _ = load_model(trained_run.best)
    sampler = Sampler(model, vocab, SampleConfig(length=4, temperature=0))
    interact(sampler, io.StringIO("caf\udce9\nHow\n/quit\n"))
    out, err = capsys.readouterr()
    assert err.splitlines()[1:] == ["> error: the prime holds b'\\xe9', a byte that is not UTF-8, at character 4",
                                    "> > "]
    assert out.startswith("How") and len(out) == len("How") + 4 + 1
