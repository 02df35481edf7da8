"""The RNN, LSTM and GRU cells written out from their equations, one time step at a time.

Slow on purpose: every gate is a named tensor you can inspect, and every step's hidden
state is a tensor in the autograd graph. It runs a CharRNN's own weights with eval
semantics (no dropout); it owns no training and no sampling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # model.py imports this module to train with --impl reference
    from .model import CharRNN, Hidden

GATE_NAMES = {"rnn": ("preactivation",), "lstm": ("input", "forget", "cell", "output"),
              "gru": ("reset", "update", "new")}


def rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """Elman cell: h' = tanh(W_ih x + b_ih + W_hh h + b_hh). Its one "gate" is the preactivation."""
    a = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # (B, H)
    return torch.tanh(a), {"preactivation": a}


def lstm_cell(x, state, w_ih, w_hh, b_ih, b_hh):
    """LSTM cell, torch gate order i, f, g, o:
    i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*), g = tanh(...),
    c' = f * c + i * g, h' = o * tanh(c').
    """
    h, c = state  # (B, H) each
    i, f, g, o = (F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)  # (B, H) each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g  # (B, H)
    h = o * torch.tanh(c)  # (B, H)
    return (h, c), {"input": i, "forget": f, "cell": g, "output": o}


def gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    """GRU cell, torch gate order r, z, n:
    r, z = sigmoid(W_i* x + b_i* + W_h* h + b_h*), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
    h' = (1 - z) * n + z * h.
    """
    xr, xz, xn = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)  # (B, H) each
    hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)  # (B, H) each
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)  # (B, H)
    return (1 - z) * n + z * h, {"reset": r, "update": z, "new": n}


CELL_FNS = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}


@dataclass
class Trace:
    """What a step-by-step run leaves behind.

    `outputs` holds the top layer's h at each step, T tensors (B, H) that stay in the
    autograd graph (ask torch.autograd.grad for them). `gates` maps a gate name to (L, B, T, H).
    """

    outputs: list[torch.Tensor]
    hidden: Hidden
    gates: dict[str, torch.Tensor]


def _layer_weights(model: CharRNN, k: int) -> tuple[torch.Tensor, ...]:
    rnn = model.rnn
    return tuple(getattr(rnn, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _initial_state(model: CharRNN, hidden: Hidden | None, batch: int, like: torch.Tensor) -> list:
    """Per-layer state from nn.RNN-style hidden ((L, B, H) or a pair of them); zeros for None."""
    cfg = model.config
    if hidden is None:
        zeros = like.new_zeros(cfg.num_layers, batch, cfg.hidden_size)  # (L, B, H)
        hidden = (zeros, zeros) if cfg.cell == "lstm" else zeros
    if cfg.cell == "lstm":
        return [(hidden[0][k], hidden[1][k]) for k in range(cfg.num_layers)]
    return [hidden[k] for k in range(cfg.num_layers)]


def trace(model: CharRNN, x_ids: torch.Tensor, hidden: Hidden | None = None, dropout: float = 0.0) -> Trace:
    """Run ids (B, T) through the model's stacked layers step by step, keeping every gate.

    Layer k reads layer k-1's outputs, with `dropout` applied between layers as nn.RNN
    does in training (0 gives eval semantics).
    """
    cell, names = CELL_FNS[model.config.cell], GATE_NAMES[model.config.cell]
    B, T = x_ids.shape
    inputs = list(model.embedding(x_ids).unbind(1))  # T x (B, E)
    states = _initial_state(model, hidden, B, inputs[0])
    final, gates = [], {name: [] for name in names}
    for k, state in enumerate(states):
        weights = _layer_weights(model, k)
        layer_gates = {name: [] for name in names}
        outputs = []
        for x in inputs:
            state, g = cell(x, state, *weights)
            outputs.append(state[0] if isinstance(state, tuple) else state)  # (B, H)
            for name in names:
                layer_gates[name].append(g[name])
        for name in names:
            gates[name].append(torch.stack(layer_gates[name], dim=1))  # (B, T, H)
        final.append(state)
        last = k == len(states) - 1
        inputs = outputs if last or dropout == 0 else [F.dropout(o, dropout, training=True) for o in outputs]
    if model.config.cell == "lstm":
        hidden = torch.stack([h for h, _ in final]), torch.stack([c for _, c in final])  # (L, B, H) each
    else:
        hidden = torch.stack(final)  # (L, B, H)
    return Trace(inputs, hidden, {name: torch.stack(v) for name, v in gates.items()})  # gates (L, B, T, H)


def run_reference(model: CharRNN, x_ids: torch.Tensor, hidden: Hidden | None = None):
    """The same function as CharRNN.forward in eval mode, built from the cell equations.

    Returns logits (B, T, V), the hidden state after the last step, and the gates dict.
    """
    t = trace(model, x_ids, hidden)
    logits = model.head(torch.stack(t.outputs, dim=1))  # (B, T, V)
    return logits, t.hidden, t.gates
