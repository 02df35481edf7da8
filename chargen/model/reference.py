"""The RNN, LSTM and GRU cells written out from their equations, one time step at a time.

Slow on purpose: every gate is a named tensor you can inspect, and every step's hidden
state is a tensor in the autograd graph. It runs a stacked nn.RNN/LSTM/GRU's own
weights; layers.py uses it as the "reference" implementation, the study tools to show gates.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# An LSTM carries (h, c); a vanilla RNN and a GRU carry h alone. Each is (L, B, H).
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

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


def layer_weights(rnn: nn.RNNBase, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Layer k's (w_ih, w_hh, b_ih, b_hh) of a stacked nn.RNN/LSTM/GRU: the very parameters."""
    w_ih, w_hh, b_ih, b_hh = (getattr(rnn, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    return w_ih, w_hh, b_ih, b_hh


def initial_state(cell: str, hidden: Hidden | None, num_layers: int, batch: int, hidden_size: int,
                  like: torch.Tensor) -> list:
    """Per-layer state from nn.RNN-style hidden ((L, B, H) or a pair of them); zeros for None."""
    if hidden is None:
        zeros = like.new_zeros(num_layers, batch, hidden_size)  # (L, B, H)
        hidden = (zeros, zeros) if cell == "lstm" else zeros
    if cell == "lstm":
        return [(hidden[0][k], hidden[1][k]) for k in range(num_layers)]
    return [hidden[k] for k in range(num_layers)]


def run_layer(cell: str, inputs: list[torch.Tensor], state, weights: tuple[torch.Tensor, ...]) -> tuple[list, dict]:
    """One layer run step by step over `inputs` (T tensors (B, I)) from `state`: its state after each
    step (T of them: h (B, H), or (h, c) for an LSTM) and each gate's values (name -> T tensors (B, H))."""
    fn, states = CELL_FNS[cell], []
    gates: dict[str, list[torch.Tensor]] = {name: [] for name in GATE_NAMES[cell]}
    for x_t in inputs:
        state, g = fn(x_t, state, *weights)
        states.append(state)
        for name, values in gates.items():
            values.append(g[name])
    return states, gates


def trace(rnn: nn.RNNBase, cell: str, x: torch.Tensor, hidden: Hidden | None = None, dropout: float = 0.0) -> Trace:
    """Run inputs x (B, T, E) through the stacked layers of `rnn` step by step, keeping every gate.

    Layer k reads layer k-1's outputs, with `dropout` applied between layers as nn.RNN
    does in training (0 gives eval semantics).
    """
    names = GATE_NAMES[cell]
    B, T, _ = x.shape
    inputs = list(x.unbind(1))  # T x (B, E)
    states = initial_state(cell, hidden, rnn.num_layers, B, rnn.hidden_size, inputs[0])
    gates: dict[str, list[torch.Tensor]]
    final, gates = [], {name: [] for name in names}
    for k, state in enumerate(states):
        steps, layer_gates = run_layer(cell, inputs, state, layer_weights(rnn, k))
        outputs = [s[0] if isinstance(s, tuple) else s for s in steps]  # T x (B, H)
        for name in names:
            gates[name].append(torch.stack(layer_gates[name], dim=1))  # (B, T, H)
        final.append(steps[-1])
        last = k == len(states) - 1
        inputs = outputs if last or dropout == 0 else [F.dropout(o, dropout, training=True) for o in outputs]
    if cell == "lstm":
        hidden = torch.stack([h for h, _ in final]), torch.stack([c for _, c in final])  # (L, B, H) each
    else:
        hidden = torch.stack(final)  # (L, B, H)
    return Trace(inputs, hidden, {name: torch.stack(v) for name, v in gates.items()})  # gates (L, B, T, H)
