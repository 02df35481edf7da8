"""The network: embedding -> stacked RNN/LSTM/GRU -> dropout -> linear head.

It does no I/O and knows nothing of text or training; `forward` maps ids and a
hidden state to logits and the next hidden state. Loss and temperature live elsewhere.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .cells import trace
from .errors import ChargenError
from .fused_gru import enabled as fused_gru_enabled
from .fused_gru import fused_gru, gru_weights

IMPLS = ("torch", "reference")  # torch's fused layers, or cells.py's equations one step at a time (slow, for study)
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# An LSTM carries (h, c); a vanilla RNN and a GRU carry h alone. Each is (L, B, H).
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a CharRNN. `vocab_size` comes from the corpus, the rest from the user."""

    vocab_size: int = 0
    cell: str = "gru"
    num_layers: int = 2
    hidden_size: int = 256
    embedding_dim: int = 64
    dropout: float = 0.1
    impl: str = "torch"

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


class CharRNN(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.vocab_size < 1:
            raise ChargenError("a model needs a vocabulary of at least one character")
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
        if self.config.impl == "reference":  # the same weights through the written-out equations
            t = trace(self, x, hidden, dropout=self.rnn.dropout if self.training else 0.0)
            out, hidden = torch.stack(t.outputs, dim=1), t.hidden  # (B, T, H)
        else:
            emb = self.embedding(x)  # (B, T, E)
            # Training a GRU on the CPU: the same weights through fused_gru.py, whose backward finds
            # the weight gradients in a few large products instead of one small one per time step.
            if (self.config.cell == "gru" and emb.device.type == "cpu" and torch.is_grad_enabled()
                    and fused_gru_enabled()):
                out, hidden = fused_gru(emb, hidden, gru_weights(self.rnn), self.rnn.dropout, self.training)
            else:
                out, hidden = self.rnn(emb, hidden)  # (B, T, H)
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
        return tuple(h.detach() for h in hidden)
    return hidden.detach()
