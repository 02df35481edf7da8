"""One rule for characters a model never learned, through the CLI: `sample --prime`, `--prime-file`,
`eval`, with a format 1 checkpoint (no unknown symbol on disk) that gains U+FFFD on loading. Each
reads them as the symbol, names them in one stderr line, and exits 0; bad prime files exit 1 with one line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import SampleConfig, evaluate_carried, load_model, sample_texts
from chargen.cli import app
from chargen.data.vocab import UNKNOWN

V1 = Path(__file__).resolve().parent.parent / "fixtures" / "v1-gru-best.pt"  # 61 characters, no 'é' or curly quotes
PRIME = "\u201cCaf\u00e9,\u201d said he"  # “Café,” said he
WARNING = "warning: the model never learned '\u201c', '\u00e9', '\u201d'; read as its unknown symbol U+FFFD\n"


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_sample_prime_with_unseen_characters_warns_once_and_samples():
    """Guards against `chargen sample --prime` exiting 1 on a model without the symbol: one warning line,
    the prime echoed as typed, and the continuation the library draws for the prime with U+FFFD."""
    result = invoke("sample", V1, "--prime", PRIME, "--length", 40, "--seed", 5, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == WARNING
    model, vocab, _ = load_model(V1)
    want = sample_texts(model, vocab, SampleConfig(length=40, seed=5, prime=PRIME))[0]
    assert result.stdout == want + "\n" and want.startswith(PRIME) and UNKNOWN not in want
    quiet = invoke("sample", V1, "--prime", PRIME, "--length", 40, "--seed", 5, "--device", "cpu", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == result.stdout


def test_prime_file_is_the_prime_read_exactly(tmp_path):
    """--prime-file FILE gives what --prime with the file's text gives (its newlines kept, a BOM dropped),
    with the same warning for characters the model never learned."""
    path = tmp_path / "prime.txt"
    text = PRIME + "\nKING.\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    from_file = invoke("sample", V1, "--prime-file", path, "--length", 30, "--seed", 2, "--device", "cpu")
    from_flag = invoke("sample", V1, "--prime", text, "--length", 30, "--seed", 2, "--device", "cpu")
    assert from_file.exit_code == 0, from_file.stderr
    assert from_file.stdout == from_flag.stdout and from_file.stdout.startswith(text)
    assert len(from_file.stdout) == len(text) + 30 + 1
    assert from_file.stderr == WARNING


@pytest.mark.parametrize("case, message", [
    ("missing", "error: prime file not found: {path} (hint: check the path)\n"),
    ("latin1", "error: {path} is not UTF-8 text (bad byte at offset 3) (hint: convert it first, e.g. iconv -f "
               "latin1 -t utf-8 IN > OUT)\n"),
    ("empty", "error: {path} is empty (hint: pass a file that contains text)\n"),
    ("both", "error: --prime and --prime-file both give the prime (hint: pass one of them)\n"),
])
def test_bad_prime_file_is_one_line(tmp_path, case, message):
    """A missing, non-UTF-8 or empty --prime-file, or one given with --prime, exits 1 with one line and
    no output."""
    path = tmp_path / f"{case}.txt"
    if case == "latin1":
        path.write_bytes("Caf\u00e9".encode("latin-1"))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "both":
        path.write_text("KING", encoding="utf-8")
    extra = ["--prime", "ROMEO"] if case == "both" else []
    result = invoke("sample", V1, "--prime-file", path, *extra, "--length", 5)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == message.format(path=path)


def test_eval_reads_unseen_characters_as_the_symbol(tmp_path):
    """Guards against `chargen eval` refusing a whole file for one character: it scores the text with
    U+FFFD in place of the unseen characters and names them in one stderr line."""
    text = ("KING.\nThe Count of Rousillon is come to court.\n" * 4).replace("Count", PRIME)
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    result = invoke("eval", V1, path, "--json", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == WARNING.replace("'\u201c', '\u00e9'", "'\u00e9', '\u201c'")  # a file's in code-point order
    model, vocab, _ = load_model(V1)
    ids = vocab.encode(text)
    assert (ids == vocab.unk_id).sum().item() == 4 * 3  # three unseen characters, four times
    want = evaluate_carried(model, ids, torch.device("cpu"))
    assert json.loads(result.stdout)["loss"] == round(want.loss, 4)


def test_eval_without_unseen_characters_says_nothing(tmp_path):
    """No warning when every character is known: the line appears only when something was replaced."""
    path = tmp_path / "t.txt"
    path.write_text("KING.\nThe Count of Rousillon is come to court.\n" * 4, encoding="utf-8")
    result = invoke("eval", V1, path, "--json", "--device", "cpu")
    assert result.exit_code == 0 and result.stderr == ""
