"""A model card's "Use it" section: installing chargen, sampling with it, and a plain-PyTorch
loader of about twenty lines (torch + safetensors + json only) that rebuilds the model from its
folder and writes chargen's greedy text. Text only; a test runs the loader as the card shows it."""
from __future__ import annotations

from ..data import RECORD_END
from ..modelfile import Checkpoint

# Greedy as chargen sample --temp 0: the prime read from a zero state (an empty one as a newline; a records
# model's preceded by its end symbol), the unknown symbol never drawn, a bytes model's UTF-8 decoded at the end.
LOADER = '''\
import json
import torch
from safetensors.torch import load_file

folder, prime, length = "{folder}", "", 200  # prime: text for the model to continue
cfg = json.load(open(f"{{folder}}/config.json", encoding="utf-8"))
rnn = {{"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}}[cfg["cell"]]
net = torch.nn.ModuleDict({{"embedding": torch.nn.Embedding(cfg["vocab_size"], cfg["embedding_dim"]),
                           "rnn": rnn(cfg["embedding_dim"], cfg["hidden_size"], cfg["num_layers"], batch_first=True),
                           "head": torch.nn.Linear(cfg["hidden_size"], cfg["vocab_size"])}})
net.load_state_dict(load_file(f"{{folder}}/model.safetensors"))
vocab, as_bytes, end = cfg["vocab"], cfg["vocab_kind"] == "bytes", {end}
unk = vocab.index(cfg["unk"]) if cfg["unk"] else None  # stands for unseen characters; never drawn
ids = list(prime.encode()) if as_bytes else [vocab.index(c) if c in vocab else unk for c in prime]
start = [end] if end is not None else [] if ids else [vocab.index("\\n")]  # what chargen reads first
ids, state, out = start + ids, None, []
with torch.no_grad():
    while len(out) < length and (not out or out[-1] != end):
        x, state = net["rnn"](net["embedding"](torch.tensor([ids])), state)  # (1, T, H)
        logits = net["head"](x[0, -1])  # (V,)
        if unk is not None:
            logits[unk] = -float("inf")
        ids = [int(logits.argmax())]  # greedy; or torch.multinomial(torch.softmax(logits / 0.8, -1), 1)
        out += ids
out = [i for i in out if i != end]
print(prime + (bytes(out).decode(errors="replace") if as_bytes else "".join(vocab[i] for i in out)))
'''


def loader(folder: str, end: int | None) -> str:
    """The loader for the model folder named `folder`; `end` is a records model's end-of-record id
    (it writes one record, as `chargen sample --num-samples 1` does), None for a stream model."""
    return LOADER.format(folder=folder.replace("\\", "\\\\").replace('"', '\\"'), end=end)


def usage_lines(ckpt: Checkpoint, folder: str) -> list[str]:
    """The card's "Use it" section for the model folder named `folder`."""
    records = bool(ckpt.train_config and ckpt.train_config.records)
    end = ckpt.vocab.chars.index(RECORD_END) if records and RECORD_END in ckpt.vocab.chars else None
    if ckpt.vocab.kind == "bytes":
        files = ("`config.json` holds the model's shape and its vocabulary: `vocab` is the 256 byte values in id "
                 "order, each labelled by the Latin-1 character of that value (labels, not characters: the text is "
                 "UTF-8, read and written a byte at a time); `unk` is null, as every byte is known.")
    else:
        files = ("`config.json` holds the model's shape and its vocabulary (`vocab`: the characters in id order; "
                 "`unk`: the symbol that stands for characters the model never saw, never drawn).")
    extra, one = (" --num-samples 5", " --num-samples 1`: one record") if records else ("", "`")
    return ["## Use it", "", ("With chargen (Python 3.10 or later; install it from its source folder), in the folder "
                              "that holds this one:"), "", "```", "pip install -e path/to/chargen",
            f"chargen sample {folder} --temp 0.8{extra}", "```", "",
            f"The weights are in `model.safetensors`: the state_dict of an embedding, a "
            f"`torch.nn.{NN[ckpt.model_config.cell]}` (batch first) and a linear head. " + files, "",
            f"Without chargen (`pip install torch safetensors`), greedy as `chargen sample --temp 0{one}:", "",
            "```python", loader(folder, end).rstrip("\n"), "```", ""]

NN = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
