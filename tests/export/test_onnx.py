"""The ONNX export (chargen.export.onnx) run by onnxruntime against the PyTorch model it came from.

Sizes are tiny and all different (B=3, E=5, H=6, V=7) so a swapped dimension fails. Each of the six
models is exported once per module (a dynamo export takes about a second) and shared by the tests.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from chargen.data import Vocab
from chargen.errors import ChargenError
from chargen.export.onnx import export_onnx
from chargen.model import CharRNN, ModelConfig

ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
pytest.importorskip("onnxscript", reason="the export extra (onnxscript) is not installed")

TEXT = "tö\n e!"  # six characters and the unknown symbol: V=7, one of them outside ASCII
B, T, E, H = 3, 100, 5, 6
CASES = [(cell, layers) for cell in ("rnn", "lstm", "gru") for layers in (1, 2)]


def tiny_model(cell: str, layers: int, vocab: Vocab) -> CharRNN:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=len(vocab), cell=cell, num_layers=layers, hidden_size=H, embedding_dim=E,
                      dropout=0.3)
    model = CharRNN(cfg)
    with torch.no_grad():  # move every bias off its init so a dropped or misplaced bias shows
        for p in model.rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model  # left in training mode: the export must still give eval semantics


@dataclass
class Exported:
    model: CharRNN
    vocab: Vocab
    path: Path
    session: object

    @property
    def state_inputs(self) -> list[str]:
        return ["h", "c"] if self.model.config.cell == "lstm" else ["h"]


@pytest.fixture(scope="module", params=CASES, ids=[f"{c}-{n}" for c, n in CASES])
def exported(request, tmp_path_factory) -> Exported:
    cell, layers = request.param
    vocab = Vocab.from_text(TEXT)
    model = tiny_model(cell, layers, vocab)
    path = tmp_path_factory.mktemp(f"onnx-{cell}-{layers}") / "model.onnx"
    export_onnx(model, vocab, path)
    assert model.training  # the export left the caller's model as it was
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return Exported(model.eval(), vocab, path, session)


def run_graph(ex: Exported, ids: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One step: ids (B,) and the state arrays (L, B, H) -> logits (B, V) and the next state."""
    feeds = {"ids": ids.astype(np.int64), **dict(zip(ex.state_inputs, state))}
    logits, *state = ex.session.run(None, feeds)
    return logits, state


def as_list(hidden) -> list[torch.Tensor]:
    return list(hidden) if isinstance(hidden, tuple) else [hidden]


def test_export_is_silent_and_writes_one_file(tmp_path, capfd, recwarn):
    """Guards against the exporter's progress lines, log records or warnings reaching the CLI's
    terminal, and against weights left beside the model as external data (a stray .onnx.data)."""
    vocab = Vocab.from_text(TEXT)
    export_onnx(tiny_model("gru", 1, vocab), vocab, tmp_path / "m.onnx")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert [str(w.message) for w in recwarn] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert not any(t.HasField("data_location") and t.data_location == onnx.TensorProto.EXTERNAL
                   for t in onnx.load(str(tmp_path / "m.onnx")).graph.initializer)


def test_steps_match_the_whole_sequence_forward(exported):
    """Guards against a wrong gate order, a dropped bias, layers wired to the wrong input, h and c
    swapped, dropout exported from a model in training mode, or a state that does not carry over:
    100 steps fed back through the graph equal PyTorch's whole-sequence forward at every step."""
    ex = exported
    cfg = ex.model.config
    torch.manual_seed(1)
    ids = torch.randint(0, len(ex.vocab), (B, T))  # (B, T)
    start = [torch.randn(cfg.num_layers, B, H) for _ in ex.state_inputs]  # (L, B, H) each
    hidden0 = tuple(start) if cfg.cell == "lstm" else start[0]
    with torch.no_grad():
        want_logits, _ = ex.model(ids, hidden0)  # (B, T, V)
        state = [s.numpy() for s in start]
        for t in range(T):
            logits, state = run_graph(ex, ids[:, t].numpy(), state)
            np.testing.assert_allclose(logits, want_logits[:, t].numpy(), atol=1e-4, rtol=0)
            _, want_state = ex.model(ids[:, : t + 1], hidden0)
            for got, want in zip(state, as_list(want_state), strict=True):
                np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=0)


def test_one_export_serves_any_batch_size(exported):
    """Guards against a batch size frozen into the graph (the example input's) or streams that
    mix: a batch of 1 gives exactly the row it would have in a batch of 3."""
    ex = exported
    cfg = ex.model.config
    assert [i.shape for i in ex.session.get_inputs()] == [["batch"]] + [[cfg.num_layers, "batch", H]] * len(
        ex.state_inputs)
    rng = np.random.default_rng(2)
    ids = rng.integers(0, len(ex.vocab), B)  # (B,)
    state = [rng.standard_normal((cfg.num_layers, B, H), dtype=np.float32) for _ in ex.state_inputs]
    logits, new = run_graph(ex, ids, state)
    assert logits.shape == (B, len(ex.vocab)) and [s.shape for s in new] == [(cfg.num_layers, B, H)] * len(state)
    for row in range(B):
        one_logits, one_new = run_graph(ex, ids[row: row + 1], [s[:, row: row + 1] for s in state])
        np.testing.assert_allclose(one_logits, logits[row: row + 1], atol=1e-6, rtol=0)
        for got, want in zip(one_new, new, strict=True):
            np.testing.assert_allclose(got, want[:, row: row + 1], atol=1e-6, rtol=0)


def test_metadata_rebuilds_vocab_config_and_names(exported):
    """Guards against a file that cannot be decoded on its own: the vocabulary (non-ASCII and the
    unknown symbol included), the config, and the state names that match the graph's own."""
    ex = exported
    props = {p.key: p.value for p in onnx.load(str(ex.path)).metadata_props}
    meta = {key: json.loads(value) for key, value in props.items() if key.startswith("chargen.")}
    assert Vocab(tuple(meta["chargen.vocab"]), meta["chargen.unk"]) == ex.vocab
    assert ModelConfig(**meta["chargen.model_config"]) == ex.model.config
    assert meta["chargen.format"] == 1
    state = meta["chargen.state"]
    assert [i.name for i in ex.session.get_inputs()] == [state["ids"], *state["inputs"]] == ["ids", *ex.state_inputs]
    assert [o.name for o in ex.session.get_outputs()] == [state["logits"], *state["outputs"]]
    assert state["outputs"] == [f"{name}_out" for name in ex.state_inputs]


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_missing_extra_is_a_chargen_error(tmp_path, monkeypatch, missing):
    """Guards against a raw ImportError traceback when the optional export extra is absent: the
    user gets chargen's message and the install command, and no file is written."""
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    vocab = Vocab.from_text(TEXT)
    with pytest.raises(ChargenError) as err:
        export_onnx(tiny_model("rnn", 1, vocab), vocab, tmp_path / "m.onnx")
    assert err.value.message == "ONNX export needs the export extra (onnx, onnxscript)"
    assert err.value.hint == 'install it with: pip install "chargen[export]"'
    assert list(tmp_path.iterdir()) == []


def test_module_imports_without_the_extra():
    """Guards against onnx imported at module level, which would break `import chargen.export.onnx`
    (and so the CLI) on an install without the extra."""
    code = ("import sys; sys.modules['onnx'] = sys.modules['onnxscript'] = None; "
            "import chargen.export.onnx as m; print(callable(m.export_onnx))")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.strip()) == (0, "True"), proc.stderr


def test_vocabulary_of_another_model_is_refused(tmp_path):
    """Guards against a file whose metadata decodes ids with the wrong characters."""
    vocab = Vocab.from_text(TEXT)
    with pytest.raises(ChargenError, match="vocabulary has 8 characters but the model 7"):
        export_onnx(tiny_model("lstm", 1, vocab), Vocab.from_text(TEXT + "x"), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
