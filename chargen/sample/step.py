"""A lean one-character-at-a-time inference step for sampling.

nn.LSTM/GRU/RNN are built for whole sequences; called once per character their
fixed overhead dominates. Here the weights are rearranged once (the embedding and
the first layer's input weights fold into one lookup table; every layer's state
weights stack into one batched product) and the cell equations run as a handful of
tensor ops on buffers made once (`Cells`, which the rounds program drives). It computes
the same function as CharRNN in eval mode; it owns no training and no sampling policy.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager, nullcontext
from typing import cast

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
    (10-bit mantissa), as torch's cuDNN RNN layers do by default; restored on leaving (many-stream
    sampling gains most, benchmarks/README.md). Elsewhere a block that changes nothing."""
    return _allow_tf32() if cuda else nullcontext()


class Cells:
    """The state of N streams and every buffer one step through all layers needs, made once.

    `advance(ids)` feeds ids (N,) and updates the state in place: each op writes into a
    buffer, and every slice is a view taken here, not per step. On a small CPU that is
    about a third less time a character than allocating each step's tensors (the ops'
    fixed cost, not their arithmetic, is what a character costs there).
    """

    def __init__(self, step: FastStep, n: int) -> None:
        L, H, G = step.num_layers, step.hidden_size, step.gates
        self.step, self.n = step, n
        new = functools.partial(torch.zeros, device=step.table.device)
        self.hs = new(L, n, H)  # (L, N, H)
        self.cs = new(L, n, H) if step.cell == "lstm" else None  # (L, N, H)
        self.top = self.hs[L - 1]  # (N, H): what the head reads
        self.h_gates = new(L, n, G * H)  # (L, N, G*H): the state's part of every layer's gates
        self.x_gates = [new(n, G * H) for _ in range(L)]  # layer k's input part; layer 0's is a table row
        self.inputs = [(step.b_in[k - 1], self.hs[k - 1], step.w_in_t[k - 1], self.x_gates[k]) for k in range(1, L)]
        self.layers = [self._views(k, new) for k in range(L)]

    def _views(self, k: int, new) -> tuple:
        H, x, s, h = self.step.hidden_size, self.x_gates[k], self.h_gates[k], self.hs[k]
        if self.step.cell == "gru":  # gates: reset, update, new
            rz, n = new(self.n, 2 * H), new(self.n, H)
            return x[:, :2 * H], s[:, :2 * H], x[:, 2 * H:], s[:, 2 * H:], rz, rz[:, :H], rz[:, H:], n, h
        if self.step.cell == "lstm":  # gates: input, forget, cell, output
            g, sg, cell, tc = new(self.n, 4 * H), new(self.n, 4 * H), new(self.n, H), new(self.n, H)
            return (x, s, g, g[:, 2 * H: 3 * H], sg, sg[:, :H], sg[:, H: 2 * H], sg[:, 3 * H:], cell, tc,
                    cast(Tensor, self.cs)[k], h)
        return x, s, h

    def load(self, state) -> None:
        """Copy a state (nn.RNN's hidden: (L, N, H), or an LSTM's pair) into the buffers."""
        if self.cs is None:
            self.hs.copy_(state)
        else:
            self.hs.copy_(state[0])
            self.cs.copy_(state[1])

    def state(self):
        """The current state: views of the buffers (the next advance changes them)."""
        return self.hs if self.cs is None else (self.hs, self.cs)

    def advance(self, ids: Tensor) -> None:
        """One time step of every layer after reading ids (N,), in place."""
        s = self.step
        torch.index_select(s.table, 0, ids, out=self.x_gates[0])  # (N, G*H): layer 0's input part
        # The state's part of every layer in one batched product: it needs only the old state.
        torch.baddbmm(s.b_hh, self.hs, s.w_hh_t, out=self.h_gates)  # (L, N, G*H)
        for k, layer in enumerate(self.layers):
            if k > 0:  # layer k reads layer k-1's new h
                b, below, w, out = self.inputs[k - 1]
                torch.addmm(b, below, w, out=out)  # (N, G*H)
            if s.cell == "gru":
                x_rz, s_rz, x_n, s_n, rz, r, z, n, h = layer
                torch.add(x_rz, s_rz, out=rz).sigmoid_()  # (N, 2H): reset, update
                torch.addcmul(x_n, r, s_n, out=n).tanh_()  # new: b_hn sits inside r * (h W_hn + b_hn)
                torch.lerp(n, h, z, out=h)  # h' = (1 - z) * n + z * h
            elif s.cell == "lstm":
                x, st, g, g_cell, sg, i, f, o, cell, tc, c, h = layer
                torch.add(x, st, out=g)
                torch.sigmoid(g, out=sg)  # the cell part of sg goes unused: one op on 4H beats three on H
                torch.tanh(g_cell, out=cell)
                c.mul_(f).addcmul_(i, cell)  # c' = f * c + i * g
                torch.mul(o, torch.tanh(c, out=tc), out=h)  # h' = o * tanh(c')
            else:
                x, st, h = layer
                torch.add(x, st, out=h).tanh_()


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
            # Weights are stored transposed, (in, out), for torch.addmm(bias, h, W^T): on a
            # 2-core CPU, that product is faster for a (1, H) row than F.linear on (out, in) weights.
            self.w_in_t = [p[f"weight_ih_l{k}"].t().contiguous() for k in range(1, L)]  # layers 1.. : (H, G*H)
            self.b_in = b_in[1:]
            self.w_hh_t = torch.stack([p[f"weight_hh_l{k}"].t() for k in range(L)])  # (L, H, G*H)
            self.b_hh = torch.stack(b_hh)[:, None]  # (L, 1, G*H): zero but for the GRU's b_hn
            self.head_w_t = model.head.weight.detach().float().t().contiguous()  # (H, V)
            self.head_b = model.head.bias.detach().float()  # (V,)
            self.cuda = emb.is_cuda
            self.gates = {"rnn": 1, "lstm": 4, "gru": 3}[self.cell]  # G: gate blocks per layer

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

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """Logits (N, V) for ids (N,) and the new state; `state` is not modified."""
        cells = Cells(self, ids.numel())
        cells.load(state)
        with tf32(self.cuda):
            cells.advance(ids)
        return self.head(cells.top), cells.state()

    def head(self, top: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) from the top layer's output (N, H)."""
        with tf32(self.cuda):
            return torch.addmm(self.head_b, top, self.head_w_t)

    @staticmethod
    def top(state) -> torch.Tensor:
        """The top layer's output (N, H) held in a state: its h."""
        return (state[0] if isinstance(state, tuple) else state)[-1]
