"""The web page of `chargen export --format web`: one self-contained HTML file that runs a CharRNN
in the browser, its weights embedded as base64 float32 and its cells written out in a small
JavaScript program (page.html, shipped beside this module). No external scripts, fonts or
requests, so the page works offline from file:// and can be sent to someone as one file.
"""
from __future__ import annotations

import base64
import html
import json
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ..data import RECORD_END, Vocab
from ..errors import ChargenError
from ..model import CharRNN
from ..sample.sampler import start_ids
from ..study.page import save_html as write_file

TEMPLATE = "page.html"
KERNEL = "matvec.wasm"  # compiled from matvec.wat by scripts/build_matvec.js
MARKER = re.compile(r"__(TITLE|CELL|ABOUT|MODEL|KERNEL)__")
CELL_NAMES = {"rnn": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}  # as the page names them
GATE_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
PAGE_MARKER = b'<meta name="generator" content="chargen">'  # in page.html's head: how --force knows a page


def is_page(path: Path) -> bool:
    """Whether the file at `path` is a page this module wrote (its marker in the first KB)."""
    try:
        with open(path, "rb") as f:
            return PAGE_MARKER in f.read(1024)
    except OSError:
        return False


def write_page(model: CharRNN, vocab: Vocab, path: Path, title: str, about: dict, records: bool = False) -> None:
    """Write the page for `model` to `path` (through a temporary file and a rename).

    `about` maps labels to the facts listed under "About this model" (values shown as str()).
    The page generates as `chargen sample` does: the prime read from a zero state (an empty prime
    as a newline), characters the model never saw read as its unknown symbol, which is never
    drawn, temperature 0 greedy, the text ending right after the first --stop string. Its seeded
    draws use the page's own generator, so a seed gives other text than the CLI's seed. With
    `records` (a model trained with --records), every record starts from a zero state on the end
    symbol and the prime, and a drawn end symbol starts the next record on a new line.
    ChargenError for a model whose cell or vocabulary the page cannot run, or an unwritable path.
    """
    write_file(os.fspath(path), page_text(model, vocab, title, about, records))


def page_text(model: CharRNN, vocab: Vocab, title: str, about: dict, records: bool = False) -> str:
    """The HTML of the page write_page writes."""
    spec = model_spec(model, vocab, records)
    package = resources.files(__package__)
    template = package.joinpath(TEMPLATE).read_text(encoding="utf-8")
    about_rows = "\n".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in about.items())
    # "<" escaped inside the JSON: no "</script>" or "<!--" in the data can end the script element early.
    values = {"TITLE": html.escape(title), "CELL": CELL_NAMES[spec["cell"]], "ABOUT": about_rows,
              "MODEL": json.dumps(spec, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c"),
              "KERNEL": base64.b64encode(package.joinpath(KERNEL).read_bytes()).decode("ascii")}
    return MARKER.sub(lambda m: values[m.group(1)], template)  # one pass: a title cannot inject a marker


def model_spec(model: CharRNN, vocab: Vocab, records: bool = False) -> dict:
    """What the page reads: the shapes, the vocabulary, the unknown symbol's id (None without one),
    the id an empty prime starts from, a records model's end-of-record id (None for a stream model), the
    vocabulary's kind (a bytes model's page reads and writes UTF-8 bytes), and every weight in one base64 blob of
    little-endian float32 (`tensors` maps a state_dict name to its (offset, size) in floats, row-major)."""
    cfg = model.config
    if cfg.cell not in CELL_NAMES:
        raise ChargenError(f"the web page cannot run a {cfg.cell!r} cell", "export an rnn, lstm or gru model")
    if len(vocab) != cfg.vocab_size:
        raise ChargenError(f"the vocabulary has {len(vocab)} symbols but the model {cfg.vocab_size}",
                           "export the vocabulary the model was trained with")
    state = model.state_dict()
    names = ["embedding.weight", *(f"rnn.{w}_l{k}" for k in range(cfg.num_layers) for w in GATE_WEIGHTS),
             "head.weight", "head.bias"]
    # Whatever the model was trained in (bf16, on a GPU), the page reads float32 on the CPU.
    arrays = [state[name].detach().to("cpu", torch.float32).contiguous().numpy().ravel() for name in names]
    offsets = np.cumsum([0] + [a.size for a in arrays])
    blob = np.concatenate(arrays).astype("<f4").tobytes()  # sum of sizes x 4 bytes
    return {"cell": cfg.cell, "num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
            "embedding_dim": cfg.embedding_dim, "chars": list(vocab.chars), "unk": vocab.unk_id,
            "kind": vocab.kind, "start": int(start_ids(vocab, "")[0]),
            "end": vocab.chars.index(RECORD_END) if records and RECORD_END in vocab.chars else None,
            "tensors": {name: [int(offsets[i]), int(a.size)] for i, (name, a) in enumerate(zip(names, arrays))},
            "blob": base64.b64encode(blob).decode("ascii")}
