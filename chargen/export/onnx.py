"""One recurrent step of a trained model as a self-contained ONNX file, for runtimes without PyTorch.

The graph maps ids (B,) and the state to logits (B, V) and the next state; the vocabulary and the
model config travel in its metadata, so the .onnx file alone can decode ids. Sampling, the loop
over steps and where the file lands are the caller's. Needs the export extra (onnx, onnxscript).
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import warnings
from pathlib import Path
from typing import cast

import torch
from torch import nn

from ..data import RECORD_END, Vocab
from ..errors import ChargenError
from ..model import CharRNN
from ..model.reference import CELL_FNS, layer_weights

FORMAT = 1  # of the metadata below; raised when a key changes meaning
BATCH = "batch"  # the name of the dynamic dimension in the graph


def state_names(cell: str) -> tuple[list[str], list[str]]:
    """The graph's state inputs and outputs for a cell kind: each (L, B, H) float32."""
    return (["h", "c"], ["h_out", "c_out"]) if cell == "lstm" else (["h"], ["h_out"])


class OneStep(nn.Module):
    """One time step of a CharRNN in eval mode, from the cell equations (model/reference.py) run on
    copies of the model's own weights, in float32 on the CPU.

    The equations, not nn.RNN/LSTM/GRU, because they become plain MatMul/Sigmoid/Tanh nodes that
    every ONNX runtime runs, with no fused recurrent operator whose gate order or bias layout
    could differ from torch's. No dropout: an exported model only ever samples.
    """

    def __init__(self, model: CharRNN) -> None:
        super().__init__()
        self.cell = model.config.cell
        # Copies, so exporting neither moves nor retypes the caller's model.
        self.embedding = copy.deepcopy(model.embedding).float().cpu()
        self.rnn = copy.deepcopy(model.rnn).float().cpu()
        self.head = copy.deepcopy(model.head).float().cpu()

    def run(self, ids: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """Logits (B, V) and each layer's new state, for ids (B,) and each layer's state."""
        x = self.embedding(ids)  # (B, E)
        new = []
        for k, state in enumerate(states):
            state, _ = CELL_FNS[self.cell](x, state, *layer_weights(self.rnn, k))
            x = state[0] if isinstance(state, tuple) else state  # (B, H): the next layer's input
            new.append(state)
        return self.head(x), new  # (B, V)


class HiddenStep(OneStep):
    """A step of an RNN or GRU: (ids, h) -> (logits, h_out)."""

    def forward(self, ids: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, new = self.run(ids, list(h.unbind(0)))
        return logits, torch.stack(new)  # (L, B, H)


class LstmStep(OneStep):
    """A step of an LSTM: (ids, h, c) -> (logits, h_out, c_out)."""

    def forward(self, ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new = self.run(ids, list(zip(h.unbind(0), c.unbind(0))))
        return logits, torch.stack([s[0] for s in new]), torch.stack([s[1] for s in new])  # (L, B, H) each


def metadata(model: CharRNN, vocab: Vocab, records: bool = False) -> dict[str, str]:
    """The metadata_props written into the file; every value is JSON. `chargen.vocab_kind` says how
    to read ids ("chars": id i is vocab[i]; "bytes": id b is the byte b, the text UTF-8), and
    `chargen.record_end` is a records model's end-of-record id (each record starts from zero state
    by reading it, and ends where it is drawn), null for a model of one stream of text."""
    inputs, outputs = state_names(model.config.cell)
    state = {"inputs": inputs, "outputs": outputs, "shape": ["num_layers", BATCH, "hidden_size"],
             "start": "zeros", "ids": "ids", "logits": "logits"}
    return {"chargen.format": json.dumps(FORMAT),
            "chargen.vocab": json.dumps(list(vocab.chars), ensure_ascii=False),
            "chargen.unk": json.dumps(vocab.unk, ensure_ascii=False),
            "chargen.vocab_kind": json.dumps(vocab.kind),
            "chargen.record_end": json.dumps(vocab.chars.index(RECORD_END) if records and RECORD_END in vocab.chars
                                             else None),
            "chargen.model_config": json.dumps(model.config.to_dict()),
            "chargen.state": json.dumps(state)}


def export_onnx(model: CharRNN, vocab: Vocab, path: Path, records: bool = False) -> None:
    """Write one step of `model` to `path` as a single ONNX file (weights inside, nothing beside it).

    Inputs: `ids` int64 (B,), `h` float32 (L, B, H) and for an LSTM `c`; outputs: `logits` float32 (B, V) (before
    temperature) and `h_out` (and `c_out`). B is dynamic; a stream starts from a zero state. metadata_props hold the
    vocabulary, its unknown symbol, the model config and the state names (see `metadata`; `records` for a model
    trained with --records). The model is left as it was. ChargenError if the export extra is missing or the
    vocabulary does not fit the model. The exporter's own messages are swallowed.
    """
    onnx = _require_extra()
    cfg = model.config
    if len(vocab) != cfg.vocab_size:
        raise ChargenError(f"the vocabulary has {len(vocab)} characters but the model {cfg.vocab_size}",
                           "export the vocabulary stored with this model's checkpoint")
    step = (LstmStep if cfg.cell == "lstm" else HiddenStep)(model).eval()
    inputs, outputs = state_names(cfg.cell)
    # Example batch of 2: torch.export specialises a dimension of size 1 to a constant.
    ids = torch.zeros(2, dtype=torch.long)  # (B,)
    state = [torch.zeros(cfg.num_layers, 2, cfg.hidden_size) for _ in inputs]  # (L, B, H) each
    batch = torch.export.Dim(BATCH)
    shapes = {"ids": {0: batch}, **{name: {1: batch} for name in inputs}}
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(step, (ids, *state), dynamo=True, input_names=["ids", *inputs],
                                    output_names=["logits", *outputs], dynamic_shapes=shapes, verbose=False)
    proto = cast(torch.onnx.ONNXProgram, program).model_proto  # dynamo=True always returns one
    proto.doc_string = (f"One step of a chargen {cfg.cell} model ({cfg.num_layers}x{cfg.hidden_size}, "
                        f"{cfg.vocab_size} characters); see the chargen.* metadata.")
    for key, value in metadata(model, vocab, records).items():
        proto.metadata_props.add(key=key, value=value)
    # Saved from the proto, not by the exporter: one file, weights inside (no .onnx.data beside it).
    onnx.save_model(proto, str(path))


def is_chargen_onnx(path: Path) -> bool:
    """Whether the file at `path` is an ONNX model with chargen's metadata (what export_onnx writes)."""
    onnx = _require_extra()
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any file may be passed; whatever onnx makes of it, it is not ours
        return False
    return "chargen.format" in {p.key for p in proto.metadata_props}


def _require_extra():
    """The onnx module, after checking that the exporter's packages import."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx.export's translator)
    except ImportError:
        raise ChargenError("ONNX export needs the export extra (onnx, onnxscript)",
                           'install it with: pip install "chargen[export]"') from None
    return onnx


@contextlib.contextmanager
def _quiet():
    """Silence the exporter: its prints, its Python warnings and the torch.onnx log (which writes
    to the stderr it found at import, past any redirection), restoring all three afterwards."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)
