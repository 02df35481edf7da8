"""The ways a CharRNN's stacked recurrent layers can run, one class each, chosen once when
the model is built (`choose_layers` says which suits a device and a purpose).

Every one computes nn.RNN/LSTM/GRU(batch_first=True)'s function on the parameters of the
model's own nn.RNNBase module, so all share one state_dict layout; they differ only in
speed and in what they let a person see.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

from .fused_gru import fused_gru, gru_weights
from .fused_rnn import fused_rnn, rnn_weights
from .reference import Hidden, trace

LAYERS = ("torch", "fused_gru", "fused_rnn", "per_layer", "reference")


class TorchLayers:
    """torch's own stacked layer: cuDNN on a GPU, oneDNN or ATen's loops on a CPU."""

    def __init__(self, rnn: nn.RNNBase, cell: str) -> None:
        self.rnn = rnn

    def __call__(self, x: torch.Tensor, hidden: Hidden | None, training: bool) -> tuple[torch.Tensor, Hidden]:
        return self.rnn(x, hidden)  # (B, T, H)


class FusedGRULayers:
    """A GRU trained on the CPU: fused_gru.py's backward finds the weight gradients in a few large
    products instead of one small one per time step. Without gradients (evaluation, sampling)
    there is no backward to save, and torch's layer runs the forward."""

    def __init__(self, rnn: nn.RNNBase, cell: str) -> None:
        if cell != "gru":
            raise ValueError(f"fused_gru runs GRU layers, not {cell}")
        self.rnn = rnn

    def __call__(self, x: torch.Tensor, hidden: Hidden | None, training: bool) -> tuple[torch.Tensor, Hidden]:
        if not torch.is_grad_enabled():
            return self.rnn(x, hidden)
        # A GRU's state is one tensor, and __init__ took GRU layers only.
        return fused_gru(x, cast(torch.Tensor | None, hidden), gru_weights(cast(nn.GRU, self.rnn)),
                         self.rnn.dropout, training)


class FusedRNNLayers:
    """A tanh RNN trained on the CPU (fused_rnn.py), as FusedGRULayers: torch's layer without gradients."""

    def __init__(self, rnn: nn.RNNBase, cell: str) -> None:
        if cell != "rnn" or rnn.nonlinearity != "tanh":
            raise ValueError(f"fused_rnn runs tanh RNN layers, not {cell}")
        self.rnn = rnn

    def __call__(self, x: torch.Tensor, hidden: Hidden | None, training: bool) -> tuple[torch.Tensor, Hidden]:
        if not torch.is_grad_enabled():
            return self.rnn(x, hidden)
        return fused_rnn(x, cast(torch.Tensor | None, hidden), rnn_weights(self.rnn), self.rnn.dropout, training)


class PerLayerLSTM:
    """A stacked LSTM on CUDA run as one single-layer cuDNN call per layer.

    cuDNN's persistent kernels, which keep the recurrent weights on chip for a whole
    sequence, serve only single-layer calls (benchmarks/README.md has what that bought on
    an H100). Each layer is a one-layer nn.LSTM that holds the stacked module's very
    parameters, so gradients land on them; dropout falls between layers as in the stacked
    call (its random draws differ).
    """

    def __init__(self, rnn: nn.RNNBase, cell: str) -> None:
        if cell != "lstm":
            raise ValueError(f"per_layer runs LSTM layers, not {cell}")
        self.rnn, self.layers = rnn, []
        for k in range(rnn.num_layers):
            size_in = rnn.input_size if k == 0 else rnn.hidden_size
            with torch.device("meta"):  # its own weights are replaced at once
                layer = nn.LSTM(size_in, rnn.hidden_size, 1, batch_first=True)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(layer, f"{name}_l0", getattr(rnn, f"{name}_l{k}"))
            self.layers.append(layer)

    def __call__(self, x: torch.Tensor, hidden: Hidden | None, training: bool) -> tuple[torch.Tensor, Hidden]:
        L, B, H = self.rnn.num_layers, x.size(0), self.rnn.hidden_size
        if hidden is None:
            zeros = x.new_zeros(L, B, H)  # (L, B, H)
            hidden = (zeros, zeros)
        last_h, last_c = [], []
        with warnings.catch_warnings():
            # The parameters live in the stacked module's buffer, which cuDNN copies per call;
            # torch warns about that once, with advice that does not apply here.
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            for k, layer in enumerate(self.layers):
                if k > 0 and training and self.rnn.dropout > 0:
                    x = nn.functional.dropout(x, self.rnn.dropout, True)
                x, (h, c) = layer(x, (hidden[0][k: k + 1].contiguous(), hidden[1][k: k + 1].contiguous()))
                last_h.append(h)  # (1, B, H)
                last_c.append(c)
        return x, (torch.cat(last_h), torch.cat(last_c))  # (B, T, H), (L, B, H) twice


class ReferenceLayers:
    """The cell equations one step at a time (reference.py): slow, for study and for checking."""

    def __init__(self, rnn: nn.RNNBase, cell: str) -> None:
        self.rnn, self.cell = rnn, cell

    def __call__(self, x: torch.Tensor, hidden: Hidden | None, training: bool) -> tuple[torch.Tensor, Hidden]:
        t = trace(self.rnn, self.cell, x, hidden, dropout=self.rnn.dropout if training else 0.0)
        return torch.stack(t.outputs, dim=1), t.hidden  # (B, T, H)


# Each runner is built from the model's nn.RNN and its cell name, then called as runner(x, hidden, training).
Runner = Callable[[torch.Tensor, Hidden | None, bool], tuple[torch.Tensor, Hidden]]
RUNNERS: dict[str, Callable[[nn.RNNBase, str], Runner]] = {
    "torch": TorchLayers, "fused_gru": FusedGRULayers, "fused_rnn": FusedRNNLayers,
    "per_layer": PerLayerLSTM, "reference": ReferenceLayers}


def choose_layers(cell: str, num_layers: int, device: torch.device | str, training: bool) -> str:
    """The fastest implementation measured for this cell on this device: the fused GRU and RNN
    for training on a CPU, per-layer calls for a stacked LSTM on CUDA, torch's layer elsewhere."""
    kind = torch.device(device).type
    if training and cell in ("gru", "rnn") and kind == "cpu":
        return f"fused_{cell}"
    if cell == "lstm" and num_layers > 1 and kind == "cuda":
        return "per_layer"
    return "torch"
