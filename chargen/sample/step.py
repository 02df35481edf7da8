"""A lean one-character-at-a-time inference step for sampling.

nn.LSTM/GRU/RNN are built for whole sequences; called once per character their
fixed overhead dominates. Here the weights are rearranged once (the embedding and
the first layer's input weights fold into one lookup table; every layer's state
weights stack into one batched product) and the cell equations run as a handful of
tensor ops (`run_layers`, which the rounds program calls). It computes the same
function as CharRNN in eval mode; it owns no training and no sampling policy.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor

from ..model import CharRNN


@contextmanager
def _allow_tf32():
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def tf32(cuda: bool):
    """On a GPU, a block in which float32 matrix products may use the tensor cores' TF32 mode
    (10-bit mantissa), as torch's cuDNN RNN layers do by default; restored on leaving. On
    an H100 it took 256-stream sampling of an LSTM 3x512 from 1.73 M to 3.09 M chars/s.
    Elsewhere a block that changes nothing (and costs next to nothing)."""
    return _allow_tf32() if cuda else nullcontext()


def lstm_gates(x_gates: Tensor, h_gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """An LSTM layer's new h and c (N, H) from its input's and its state's gate pre-activations
    (N, 4H each: input, forget, cell, output) and c."""
    hidden = c.size(1)
    gates = x_gates + h_gates
    s = torch.sigmoid(gates)  # the cell part of s goes unused: one op on 4H beats three on H
    g = torch.tanh(gates[:, 2 * hidden: 3 * hidden])
    c = torch.addcmul(s[:, hidden: 2 * hidden] * c, s[:, :hidden], g)
    return s[:, 3 * hidden:] * torch.tanh(c), c


def gru_gates(x_gates: Tensor, h_gates: Tensor, h: Tensor) -> Tensor:
    """A GRU layer's new h (N, H) from the gate pre-activations (N, 3H each: reset, update, new;
    the state's hold b_hn, which sits inside r * (...)) and h."""
    hidden = h.size(1)
    rz = (x_gates[:, : 2 * hidden] + h_gates[:, : 2 * hidden]).sigmoid_()  # (N, 2H): reset, update
    n = torch.addcmul(x_gates[:, 2 * hidden:], rz[:, :hidden], h_gates[:, 2 * hidden:]).tanh_()  # (N, H)
    return torch.lerp(n, h, rz[:, hidden:])  # (1 - z) * n + z * h


def run_layers(cell: str, x_gates: Tensor, w_in: list[Tensor], b_in: list[Tensor], w_hh: Tensor,
               b_hh: Tensor, hs: Tensor, cs: Tensor) -> tuple[Tensor, Tensor]:
    """One time step through every layer: the new hs (L, N, H) and, for an LSTM, cs (L, N, H)
    (else `cs` comes back as given). `x_gates` (N, G*H) is layer 0's input part.

    The state's part of every layer's gates is one batched product, taken first: it needs
    only the old state (fewer calls, each large enough to split over the cores).
    """
    h_gates = torch.baddbmm(b_hh, hs, w_hh)  # (L, N, G*H)
    new_h: list[Tensor] = []
    new_c: list[Tensor] = []
    for k in range(hs.size(0)):
        if k > 0:
            x_gates = torch.addmm(b_in[k - 1], new_h[k - 1], w_in[k - 1])  # (N, G*H)
        if cell == "lstm":
            h, c = lstm_gates(x_gates, h_gates[k], cs[k])
            new_c.append(c)
        elif cell == "gru":
            h = gru_gates(x_gates, h_gates[k], hs[k])
        else:
            h = torch.tanh(x_gates + h_gates[k])
        new_h.append(h)
    return torch.stack(new_h), torch.stack(new_c) if cell == "lstm" else cs


class FastStep:
    """Weights of a CharRNN arranged for single-step inference; call it on ids (N,) and a state.

    The state is nn.RNN's: (L, N, H), or a pair of them for an LSTM, in float32.
    """

    def __init__(self, model: CharRNN) -> None:
        cfg = model.config
        self.cell, self.hidden_size, self.num_layers = cfg.cell, cfg.hidden_size, cfg.num_layers
        rnn = model.rnn
        with torch.no_grad():
            p = {name: t.detach().float().clone() for name, t in rnn.named_parameters()}
            emb = model.embedding.weight.detach().float()  # (V, E)
            L = cfg.num_layers
            # For the LSTM and the RNN both biases simply add, so they fold into one. The
            # GRU's hidden bias of its "new" gate sits inside r * (...), so only the reset
            # and update parts of it can move.
            b_in = [p[f"bias_ih_l{k}"] + self._movable(p[f"bias_hh_l{k}"]) for k in range(L)]
            b_hh = [p[f"bias_hh_l{k}"] - self._movable(p[f"bias_hh_l{k}"]) for k in range(L)]  # (G*H,)
            # Layer 0's input projection of every character, computed once: (V, G*H).
            self.table = torch.addmm(b_in[0], emb, p["weight_ih_l0"].t()).contiguous()
            # Weights are stored transposed, (in, out), for torch.addmm(bias, h, W^T): measured on a
            # 2-core CPU, that product is faster for a (1, H) row than F.linear on (out, in) weights.
            self.w_in_t = [p[f"weight_ih_l{k}"].t().contiguous() for k in range(1, L)]  # layers 1.. : (H, G*H)
            self.b_in = b_in[1:]
            self.w_hh_t = torch.stack([p[f"weight_hh_l{k}"].t() for k in range(L)])  # (L, H, G*H)
            self.b_hh = torch.stack(b_hh)[:, None]  # (L, 1, G*H): zero but for the GRU's b_hn
            self.head_w_t = model.head.weight.detach().float().t().contiguous()  # (H, V)
            self.head_b = model.head.bias.detach().float()  # (V,)
            self.cuda = emb.is_cuda

    def _movable(self, b_hh: torch.Tensor) -> torch.Tensor:
        if self.cell != "gru":
            return b_hh
        moved = b_hh.clone()
        moved[2 * self.hidden_size:] = 0
        return moved

    def from_hidden(self, hidden):
        """nn.RNN-style hidden ((L, N, H) or a pair of them) as this class's state: in float32."""
        if self.cell == "lstm":
            return tuple(t.float().contiguous() for t in hidden)
        return hidden.float().contiguous()

    def split(self, state) -> tuple[torch.Tensor, torch.Tensor]:
        """A state as run_layers takes it: (hs, cs), hs twice for a cell without c."""
        return state if self.cell == "lstm" else (state, state)

    def join(self, hs: torch.Tensor, cs: torch.Tensor):
        """The inverse of split."""
        return (hs, cs) if self.cell == "lstm" else hs

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """Logits (N, V) for ids (N,) and the new state; `state` is not modified."""
        top, new_state = self.cells(ids, state)
        return self.head(top), new_state

    def cells(self, ids: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """The top layer's output (N, H) after ids (N,), and the new state; `state` is not modified."""
        with tf32(self.cuda):
            hs, cs = run_layers(self.cell, self.table.index_select(0, ids), self.w_in_t, self.b_in,
                                self.w_hh_t, self.b_hh, *self.split(state))
        return hs[-1], self.join(hs, cs)

    def head(self, top: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) from the top layer's output (N, H)."""
        with tf32(self.cuda):
            return torch.addmm(self.head_b, top, self.head_w_t)

    @staticmethod
    def top(state) -> torch.Tensor:
        """The top layer's output (N, H) held in a state: its h."""
        return (state[0] if isinstance(state, tuple) else state)[-1]
