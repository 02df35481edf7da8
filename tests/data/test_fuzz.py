"""Bad input never ends in a traceback: property tests over corpus bytes and over CLI
option values for `chargen train` and `chargen sample`, run in-process through typer's
CliRunner, plus the reproducers of the failures fuzzing found.

Every outcome is checked against what it must be: exit 0 with the files or text asked
for, exit 1 with one 'error: ... (hint: ...)' line, or exit 2 with a usage message.
"""
from __future__ import annotations

import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from chargen import SampleConfig, load_model, read_checkpoint, sample_texts
from chargen.cli import app
from chargen.data.vocab import UNKNOWN

runner = CliRunner()  # this typer keeps result.stdout and result.stderr apart
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None)
TRAIN_TINY = ["--max-steps", "2", "--hidden-size", "4", "--embedding-dim", "3", "--num-layers", "1",
              "--batch-size", "2", "--seq-len", "4", "--device", "cpu", "-q"]

PIECES = [b"a", b"Z", b" ", b"\x00", b"\n", b"\r\n", b"\t", "é".encode(), "😀".encode(), "\U0010ffff".encode(),
          b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80"]  # the last four are never valid UTF-8
corpora = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=120).map(lambda text: text.encode("utf-8")),
    st.lists(st.sampled_from(PIECES), max_size=80).map(b"".join),
    st.tuples(st.sampled_from(PIECES), st.integers(1, 60)).map(lambda pair: pair[0] * pair[1]),
    st.sampled_from([b"", b"a", b"\n" * 40, b"\x00" * 40, b"\xef\xbb\xbf", b"a" * 19, b"a" * 20, b"ab" * 5]),
)
VALUES = ["-1", "0", "-0", "1", "3", "0.5", "1e-300", "1e30", str(10**30), "nan", "inf", "-inf", "", "abc"]
TRAIN_OPTIONS = ["--lr", "--batch-size", "--seq-len", "--hidden-size", "--embedding-dim", "--num-layers",
                 "--dropout", "--grad-clip", "--max-time", "--val-frac", "--weight-decay", "--warmup-steps",
                 "--min-lr-frac", "--patience", "--eval-every", "--save-every", "--seed", "--cell", "--precision",
                 "--device"]
SAMPLE_OPTIONS = ["--temp", "--length", "--top-k", "--top-p", "--num-samples", "--seed", "--prime", "--stop"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def check_failure(result) -> None:
    """Exit 1 is one 'error: ... (hint: ...)' line; exit 2 is a usage message; neither has a traceback or stdout."""
    assert result.exit_code in (1, 2), (result.exit_code, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == "" and "Traceback" not in result.stderr
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "hint:" in lines[0], result.stderr
    else:
        assert "Invalid value" in result.stderr or "Usage" in result.stderr, result.stderr


def trainable(data: bytes, val_frac: float) -> bool:
    """Whether chargen can train 2 steps of batch 2 x window 4 on these bytes: the rules of read_text,
    load_corpus and StreamBatcher restated."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return False
    n_val = int(len(text) * val_frac)
    if not text or (val_frac > 0 and n_val < 2):
        return False
    return ((len(text) - n_val) // 2 - 1) // 4 >= 1


def last_value(pairs: list[tuple[str, str]], option: str, default: str) -> str:
    """What click does with a repeated option: the last one wins."""
    return next((value for name, value in reversed(pairs) if name == option), default)


@pytest.mark.slow
@FUZZ
@given(data=corpora, val_frac=st.sampled_from(["0", "0.1"]))
def test_train_on_any_bytes_exits_0_or_1(data, val_frac):
    """Any file, binary or text, must train (exit 0, vocabulary = its characters and the unknown symbol)
    or exit 1 with one line."""
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_bytes(data)
        result = invoke("train", corpus, *TRAIN_TINY, "--val-frac", val_frac, "--out", Path(tmp) / "run")
        event(f"exit {result.exit_code}")
        if not trainable(data, float(val_frac)):
            check_failure(result)
            assert result.exit_code == 1
            return
        assert result.exit_code == 0, (result.stderr, result.exception)
        last = read_checkpoint(Path(tmp) / "run" / "last.pt")
        assert last["step"] == 2
        assert last["vocab"] == sorted(set(data.decode("utf-8").removeprefix("\ufeff")) | {UNKNOWN})


@pytest.mark.slow
@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(TRAIN_OPTIONS), st.sampled_from(VALUES)), min_size=1, max_size=3))
def test_train_options_never_traceback(tmp_path_factory, corpus_text_file, pairs):
    """Any value of any train option (negative, zero, huge, nan, inf, empty, text) must exit 0, 1 or 2, never crash."""
    out = tmp_path_factory.mktemp("run") / "run"
    result = invoke("train", corpus_text_file, *TRAIN_TINY, *[x for pair in pairs for x in pair], "--out", out)
    event(f"exit {result.exit_code}")
    if result.exit_code != 0:
        check_failure(result)
        return
    assert result.exception is None and result.stdout == ""
    assert 1 <= read_checkpoint(out / "last.pt")["step"] <= 2  # --max-time 1e-300 stops after one step


@pytest.mark.slow
@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(SAMPLE_OPTIONS), st.sampled_from(VALUES)), min_size=1, max_size=3)
       .filter(lambda pairs: ("--length", str(10**30)) not in pairs))  # a valid, endless stream
def test_sample_options_never_traceback(trained_run, pairs):
    """Any value of any sample option must exit 0 with exactly the text asked for (and one warning line when
    the prime has characters the model never learned), or exit 1 or 2 with a message."""
    result = invoke("sample", trained_run.best, "--length", "20", "--seed", "1",
                    *[x for pair in pairs for x in pair])
    event(f"exit {result.exit_code}")
    if result.exit_code != 0:
        check_failure(result)
        return
    length, prime = int(last_value(pairs, "--length", "20")), last_value(pairs, "--prime", "")
    unknown = trained_run.vocab.unknown(prime)
    warning = f"warning: the model never learned {', '.join(map(repr, unknown))}; read as its unknown symbol U+FFFD\n"
    assert result.exception is None and result.stderr == (warning if unknown else "")
    samples, stop = int(last_value(pairs, "--num-samples", "1")), last_value(pairs, "--stop", "")
    if samples == 1:
        assert result.stdout.startswith(prime) and result.stdout.endswith("\n")
        text = result.stdout[len(prime):-1]
        if stop:  # ends right after the first occurrence of --stop, or at --length
            assert len(text) <= length and stop not in text[:-1] and (len(text) == length or text.endswith(stop))
        else:
            assert len(text) == length
    else:
        assert re.findall(r"^----- sample (\d+) -----$", result.stdout, re.M) == [str(i + 1) for i in range(samples)]


@pytest.fixture(scope="session")
def corpus_text_file(tmp_path_factory, poem_text) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "poem.txt"
    path.write_text(poem_text, encoding="utf-8", newline="")
    return path


# -- what fuzzing found ---------------------------------------------------------------------------
def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (24 << 30, 24 << 30))  # the model below needs 64 GiB


@pytest.mark.slow
def test_model_too_big_for_memory_is_one_line(tmp_path, corpus_text_file):
    """`--hidden-size 65536` (allowed by ModelConfig) on a machine without 64 GiB must exit 1 with one line,
    not a DefaultCPUAllocator traceback."""
    done = subprocess.run([sys.executable, "-m", "chargen", "train", str(corpus_text_file), "--hidden-size", "65536",
                           "--embedding-dim", "1", "--num-layers", "1", "--max-steps", "1", "--device", "cpu", "-q",
                           "--out", str(tmp_path / "run")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limit_memory)
    assert (done.returncode, done.stdout) == (1, "")
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "memory" in lines[0] and "hint:" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("temperature", [1e-60, 1e-300, 5e-324])
def test_tiny_temperature_samples_greedily(trained_run, temperature):
    """A temperature that SampleConfig accepts but is tiny must give the greedy text, not one repeated character."""
    model, vocab, _ = load_model(trained_run.best)
    greedy = sample_texts(model, vocab, SampleConfig(length=60, temperature=0.0, prime="Tw", seed=1))
    tiny = sample_texts(model, vocab, SampleConfig(length=60, temperature=temperature, prime="Tw", seed=1))
    assert tiny == greedy
