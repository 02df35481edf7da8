"""The network: embedding -> stacked RNN/LSTM/GRU -> dropout -> linear head.

It does no I/O and knows nothing of text or training; `forward` maps ids and a
hidden state to logits and the next hidden state. Loss and temperature live elsewhere;
how the recurrent layers run is layers.py's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import cast

import torch
from torch import nn

from ..errors import ChargenError
from .layers import LAYERS, RUNNERS
from .reference import Hidden

IMPLS = ("torch", "reference")  # torch's layers, or reference.py's equations one step at a time (slow, for study)
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # the rows each cell's layer stacks per unit: nn.RNNBase's layout


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a CharRNN. `vocab_size` comes from the corpus, the rest from the user."""

    # Each setting's help and group (config/settings.py's convention): `chargen train`'s options come from these.
    vocab_size: int = 0
    cell: str = field(default="gru", metadata={"group": "model", "help": "Recurrent cell: rnn, lstm or gru."})
    num_layers: int = field(default=2, metadata={"group": "model", "help": "Stacked recurrent layers."})
    hidden_size: int = field(default=256, metadata={"group": "model", "help": "Units per recurrent layer."})
    embedding_dim: int = field(default=64, metadata={"group": "model", "help": "Size of a character's embedding."})
    dropout: float = field(default=0.1, metadata={"group": "model", "help": "Dropout between layers and before the "
                                                                            "head."})
    impl: str = field(default="torch", metadata={"group": "model", "help": "torch (fast), or reference: the cell "
                                                                           "equations step by step (slow, for study)."})

    def __post_init__(self) -> None:
        if self.impl not in IMPLS:
            raise ChargenError(f"unknown implementation {self.impl!r}", "use --impl torch or --impl reference")
        if self.cell not in CELLS:
            raise ChargenError(f"unknown cell {self.cell!r}", "use one of: rnn, lstm, gru")
        for name in ("num_layers", "hidden_size", "embedding_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 65536:
                raise ChargenError(f"{name} must be an integer from 1 to 65536, got {value!r}",
                                   f"pass a positive --{name.replace('_', '-')}")
        if not isinstance(self.vocab_size, int) or self.vocab_size < 0:
            raise ChargenError(f"vocab_size must be a non-negative integer, got {self.vocab_size!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ChargenError(f"dropout must be in [0, 1), got {self.dropout!r}", "try --dropout 0.1")

    def to_dict(self) -> dict:
        return asdict(self)


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a CharRNN's state_dict, without building one: a file's weights
    are checked against it before any memory is spent (building on the meta device would cost
    seconds of start-up, as torch loads its compiler for the meta initialisers)."""
    V, E, H = config.vocab_size, config.embedding_dim, config.hidden_size
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (V, E)}
    rows = GATES[config.cell] * H
    for k in range(config.num_layers):
        shapes |= {f"rnn.weight_ih_l{k}": (rows, E if k == 0 else H), f"rnn.weight_hh_l{k}": (rows, H),
                   f"rnn.bias_ih_l{k}": (rows,), f"rnn.bias_hh_l{k}": (rows,)}
    return shapes | {"head.weight": (V, H), "head.bias": (V,)}


class CharRNN(nn.Module):
    """The network. `layers` names how its recurrent layers run (layers.py: "torch",
    "fused_gru", "fused_rnn", "per_layer", "reference"); None takes the config's `impl`. The choice changes
    speed, never the function or the state_dict, so a model trained one way loads into any."""

    def __init__(self, config: ModelConfig, layers: str | None = None) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ChargenError("a model needs a vocabulary of at least one character")
        layers = layers or config.impl
        if layers not in LAYERS:
            raise ChargenError(f"unknown layer implementation {layers!r}", f"use one of: {', '.join(LAYERS)}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        # torch applies this dropout only between stacked layers, never inside the recurrence:
        # dropping recurrent connections would erase the memory the cell is meant to carry.
        inner_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.rnn = CELLS[config.cell](config.embedding_dim, config.hidden_size, config.num_layers,
                                      batch_first=True, dropout=inner_dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self._init_weights()
        self.layers = RUNNERS[layers](self.rnn, config.cell)
        self.layers_name = layers

    def _init_weights(self) -> None:
        # A forget-gate bias of 1 lets an untrained LSTM keep its memory, so gradients
        # reach further back from the first step (Jozefowicz et al., 2015).
        if self.config.cell == "lstm":
            h = self.config.hidden_size
            for name, p in self.rnn.named_parameters():
                if name.startswith("bias_ih"):
                    nn.init.zeros_(p)
                    with torch.no_grad():
                        p[h: 2 * h].fill_(1.0)  # gate order in torch: input, forget, cell, output
                elif name.startswith("bias_hh"):
                    nn.init.zeros_(p)

    def forward(self, x: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """Logits (B, T, V) for ids x (B, T), and the hidden state after the last step.

        `hidden=None` starts every stream from zeros.
        """
        emb = self.embedding(x)  # (B, T, E)
        out, hidden = self.layers(emb, hidden, self.training)  # (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        return logits, hidden

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph at a window boundary: the values carry on, the gradient stops here.

    Without this, backward would run through every window since the start of the
    epoch (slow, and memory grows without bound): that is what "truncated" BPTT truncates.
    """
    if isinstance(hidden, tuple):
        return cast(Hidden, tuple(h.detach() for h in hidden))  # (h, c)
    return hidden.detach()


def zero_where(flag: torch.Tensor, hidden: Hidden) -> Hidden:
    """`hidden`, or zeros of its shape where the 0-d bool `flag` holds: a restart decided on the
    device, without the host waiting to read the flag. Zeros are what a state of None means."""
    if isinstance(hidden, tuple):
        return cast(Hidden, tuple(torch.where(flag, 0.0, h) for h in hidden))  # (h, c)
    return torch.where(flag, 0.0, hidden)
