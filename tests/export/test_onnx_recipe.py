"""docs/sharing.md's ONNX loop, extracted from the document as written and run by onnxruntime on
each kind of model: characters, bytes (a non-ASCII prime), records (its end symbol read and
drawn) and a prime with a character the model never saw; it must write chargen's greedy text."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from kind_runs import bytes_run_fixture, names_run_fixture  # noqa: F401  (fixtures)

from chargen import SampleConfig, generate, load_model, sample_records
from chargen.export import export

pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
pytest.importorskip("onnxscript", reason="the export extra (onnxscript) is not installed")

DOC = Path(__file__).parents[2] / "docs" / "sharing.md"


def documented_loop() -> str:
    """The python block of the ONNX section, exactly as the document shows it."""
    section = DOC.read_text(encoding="utf-8").split("## onnx: one recurrent step")[1].split("\n## ")[0]
    return section.split("```python\n")[1].split("\n```")[0]


def run_documented(onnx_file: Path) -> dict:
    """Run the documented code as written in the folder of `onnx_file` (named as the document names
    it); its namespace, with what it printed under "printed"."""
    namespace, printed = {}, io.StringIO()
    with contextlib.chdir(onnx_file.parent), contextlib.redirect_stdout(printed):
        exec(compile(documented_loop(), str(DOC), "exec"), namespace)  # noqa: S102 - our own document's code
    return {**namespace, "printed": printed.getvalue()}


def greedy(run_path: Path, prime: str, length: int = 200) -> str:
    model, vocab, _ = load_model(run_path)
    return prime + "".join(generate(model, vocab, SampleConfig(length=length, temperature=0, prime=prime), "cpu"))


@pytest.mark.slow  # one dynamo export per kind: about 2 s each
def test_the_documented_loop_writes_chargens_text_for_every_kind(trained_run, bytes_run, names_run, tmp_path):
    """Guards against a documented loop that feeds a bytes model character ids (mojibake), raises on a
    character the model never saw, never reads a records model's end symbol, or draws the unknown
    symbol: each kind's greedy text equals chargen's."""
    for name, run_path in (("chars", trained_run.best), ("bytes", bytes_run), ("records", names_run)):
        (tmp_path / name).mkdir()
        export(run_path, "onnx", tmp_path / name / "poems-gru.onnx")
    chars = run_documented(tmp_path / "chars" / "poems-gru.onnx")
    assert chars["printed"] == greedy(trained_run.best, "The ") + "\n"
    generate_onnx = chars["generate"]
    unseen = "Twinkl\u00e9 "  # é is not in the poem
    assert generate_onnx(str(tmp_path / "chars" / "poems-gru.onnx"), unseen) == greedy(trained_run.best, unseen)
    prime = "Up \u00e9to"  # two bytes for é
    got = generate_onnx(str(tmp_path / "bytes" / "poems-gru.onnx"), prime, length=60)
    assert got == greedy(bytes_run, prime, 60) and "\u00c3" not in got  # no mojibake of é's bytes
    model, vocab, _ = load_model(names_run)
    record = sample_records(model, vocab, SampleConfig(length=200, temperature=0, prime="", num_samples=1), "cpu")
    assert record.ended == [True] and len(record.records[0]) >= 2
    assert generate_onnx(str(tmp_path / "records" / "poems-gru.onnx"), "") == record.records[0]
