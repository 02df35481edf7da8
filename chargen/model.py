"""The network: embedding -> stacked RNN/LSTM/GRU -> dropout -> linear head.

It does no I/O and knows nothing of text or training; `forward` maps ids and a
hidden state to logits and the next hidden state. Loss and temperature live elsewhere.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
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
            elif self._layerwise:
                out, hidden = layerwise(self.rnn, emb, hidden, self.training)
            else:
                out, hidden = self.rnn(emb, hidden)  # (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        return logits, hidden

    @property
    def _layerwise(self) -> bool:
        # A stacked LSTM on CUDA runs one layer per cuDNN call, each layer's weights in a buffer of its own.
        # CHARGEN_LAYERWISE=0 turns this off (for measuring what it buys).
        return (self.config.cell == "lstm" and self.config.num_layers > 1 and self.embedding.weight.is_cuda
                and os.environ.get("CHARGEN_LAYERWISE", "1") != "0")

    def _apply(self, fn, *args, **kwargs):
        # Moving the model (.to, .cuda, .half) lets nn.LSTM lay all layers out in one cuDNN buffer;
        # layerwise() wants one buffer per layer, so that cuDNN can use each in place.
        super()._apply(fn, *args, **kwargs)
        if self._layerwise:
            flatten_per_layer(self.rnn)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def flatten_per_layer(rnn: nn.RNNBase) -> None:
    """Give each layer's four weight tensors a contiguous buffer of their own, in cuDNN's order.

    cuDNN takes an RNN's weights in place only when they start a buffer laid out for that
    very call; nn.LSTM.flatten_parameters lays out one buffer for all layers, which a
    single-layer call on layer 1 or 2 cannot use (it would copy the weights at every call).
    The parameters stay the same objects: they become views of the new buffers.
    """
    mode = torch.backends.cudnn.rnn.get_cudnn_mode(rnn.mode)
    weights = rnn._flat_weights
    with torch.no_grad():
        for k in range(rnn.num_layers):
            size_in = rnn.input_size if k == 0 else rnn.hidden_size
            torch._cudnn_rnn_flatten_weight(weights[4 * k: 4 * k + 4], 4, size_in, mode, rnn.hidden_size, 0, 1,
                                            rnn.batch_first, False)


def layerwise(rnn: nn.RNNBase, x: torch.Tensor, hidden: Hidden | None, training: bool) -> tuple[torch.Tensor, Hidden]:
    """`rnn(x, hidden)` for a batch-first stacked nn.LSTM/GRU/RNN, run as one single-layer call per layer.

    The same function, dropout between layers included (its random draws differ). cuDNN
    uses its persistent kernels, which keep the recurrent weights on chip for the whole
    sequence, only for single-layer calls: on an H100, an LSTM 3x512 at batch 128 x 128
    trained 1.7x faster this way than as one three-layer call (benchmarks/README.md).
    """
    lstm = isinstance(rnn, nn.LSTM)
    run = {nn.LSTM: torch._VF.lstm, nn.GRU: torch._VF.gru}.get(type(rnn))
    if run is None:
        run = torch._VF.rnn_tanh if rnn.nonlinearity == "tanh" else torch._VF.rnn_relu
    L, B, H = rnn.num_layers, x.size(0), rnn.hidden_size
    if hidden is None:
        zeros = x.new_zeros(L, B, H)
        hidden = (zeros, zeros) if lstm else zeros
    weights = rnn._flat_weights  # w_ih, w_hh, b_ih, b_hh for layer 0, then layer 1, ...
    last_h, last_c = [], []
    for k in range(L):
        if k > 0 and training and rnn.dropout > 0:
            x = F.dropout(x, rnn.dropout, True)
        w = weights[4 * k: 4 * k + 4]
        if lstm:
            x, h, c = run(x, (hidden[0][k: k + 1], hidden[1][k: k + 1]), w, True, 1, 0.0, training, False, True)
            last_c.append(c)
        else:
            x, h = run(x, hidden[k: k + 1], w, True, 1, 0.0, training, False, True)
        last_h.append(h)
    h = torch.cat(last_h)  # (L, B, H)
    return x, ((h, torch.cat(last_c)) if lstm else h)


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph at a window boundary: the values carry on, the gradient stops here.

    Without this, backward would run through every window since the start of the
    epoch (slow, and memory grows without bound): that is what "truncated" BPTT truncates.
    """
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


def zero_where(flag: torch.Tensor, hidden: Hidden) -> Hidden:
    """`hidden`, or zeros of its shape where the 0-d bool `flag` holds: a restart decided on the
    device, without the host waiting to read the flag. Zeros are what a state of None means."""
    if isinstance(hidden, tuple):
        return tuple(torch.where(flag, 0.0, h) for h in hidden)
    return torch.where(flag, 0.0, hidden)
