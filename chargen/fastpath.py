"""A lean one-character-at-a-time inference step for sampling.

nn.LSTM/GRU/RNN are built for whole sequences; called once per character their
fixed overhead dominates. Here the weights are rearranged once (the embedding and
the first layer's input weights fold into one lookup table) and the cell equations
run as a handful of fused tensor ops; on a GPU the LSTM and GRU gates go through
torch's one-kernel cell functions, so a layer is three kernels. It computes the
same function as CharRNN in eval mode; it owns no training and no sampling policy.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from .model import CharRNN


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


class FastStep:
    """Weights of a CharRNN arranged for single-step inference; call it on ids (N,) and a state."""

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
            self.b_hh = [p[f"bias_hh_l{k}"] - self._movable(p[f"bias_hh_l{k}"]) for k in range(L)]  # (G*H,)
            # Layer 0's input projection of every character, computed once: (V, G*H).
            self.table = torch.addmm(b_in[0], emb, p["weight_ih_l0"].t()).contiguous()
            # Weights are stored transposed, (in, out), for torch.addmm(bias, h, W^T): measured on a
            # 2-core CPU, that product is faster for a (1, H) row than F.linear on (out, in) weights,
            # and addmm takes the bias (or the other gates' sum) in the same call.
            self.w_ih_t = [None] + [p[f"weight_ih_l{k}"].t().contiguous() for k in range(1, L)]  # (H, G*H)
            self.b_ih = [None] + b_in[1:]
            w_hh_t = [p[f"weight_hh_l{k}"].t() for k in range(L)]  # (H, G*H)
            H = cfg.hidden_size
            # On CUDA the gates of an LSTM or GRU layer are one kernel, torch's fused cell.
            self.fused_cells = self.cell != "rnn" and emb.device.type == "cuda"
            if self.cell == "gru" and not self.fused_cells:
                # r and z add x's part in the product itself; n keeps h's part apart
                self.w_rz_t = [w[:, : 2 * H].contiguous() for w in w_hh_t]  # (H, 2H)
                self.w_n_t = [w[:, 2 * H:].contiguous() for w in w_hh_t]  # (H, H)
                self.b_hn = [b[2 * H:].contiguous() for b in self.b_hh]  # (H,)
            else:
                self.w_hh_t = [w.contiguous() for w in w_hh_t]  # (H, G*H)
            self.head_w_t = model.head.weight.detach().float().t().contiguous()  # (H, V)
            self.head_b = model.head.bias.detach().float()  # (V,)
            self.cuda = emb.is_cuda

    def _movable(self, b_hh: torch.Tensor) -> torch.Tensor:
        if self.cell != "gru":
            return b_hh
        moved = b_hh.clone()
        moved[2 * self.hidden_size:] = 0
        return moved

    def from_hidden(self, hidden) -> list:
        """Convert nn.RNN-style hidden ((L, N, H) or a pair of them) to this class's per-layer state."""
        if self.cell == "lstm":
            h, c = hidden
            return [(h[k].float().contiguous(), c[k].float().contiguous()) for k in range(self.num_layers)]
        return [hidden[k].float().contiguous() for k in range(self.num_layers)]

    def to_hidden(self, state: list):
        """The inverse of from_hidden: per-layer state back to nn.RNN-style hidden."""
        if self.cell == "lstm":
            return torch.stack([h for h, _ in state]), torch.stack([c for _, c in state])
        return torch.stack(state)

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """Logits (N, V) for ids (N,) and the new state; `state` is not modified."""
        top, new_state = self.cells(ids, state)
        return self.head(top), new_state

    def cells(self, ids: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """The top layer's output (N, H) after ids (N,), and the new state; `state` is not modified."""
        with tf32(self.cuda):
            x_gates = self.table.index_select(0, ids)  # (N, G*H)
            new_state = []
            for k in range(self.num_layers):
                if k > 0:
                    x_gates = torch.addmm(self.b_ih[k], x, self.w_ih_t[k])  # (N, G*H)
                x, s = getattr(self, f"_{self.cell}")(x_gates, state[k], k)
                new_state.append(s)
        return x, new_state

    def head(self, top: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) from the top layer's output (N, H)."""
        with tf32(self.cuda):
            return torch.addmm(self.head_b, top, self.head_w_t)

    @staticmethod
    def top(state: list) -> torch.Tensor:
        """The top layer's output (N, H) held in a state: its h."""
        last = state[-1]
        return last[0] if isinstance(last, tuple) else last

    def _lstm(self, x_gates, state, k):
        h, c = state  # (N, H) each
        if self.fused_cells:
            h, c, _ = torch.ops.aten._thnn_fused_lstm_cell(x_gates, torch.mm(h, self.w_hh_t[k]), c)
            return h, (h, c)
        gates = torch.addmm(x_gates, h, self.w_hh_t[k])  # (N, 4H): input, forget, cell, output
        H = self.hidden_size
        s = torch.sigmoid(gates)  # the cell part of s goes unused: one op on 4H beats three on H
        g = torch.tanh(gates[:, 2 * H: 3 * H])
        c = torch.addcmul(s[:, H: 2 * H] * c, s[:, :H], g)
        h = s[:, 3 * H:] * torch.tanh(c)
        return h, (h, c)

    def _gru(self, x_gates, h, k):
        if self.fused_cells:  # b_hh holds only the new gate's part, which the kernel keeps inside r * (...)
            h, _ = torch.ops.aten._thnn_fused_gru_cell(x_gates, torch.addmm(self.b_hh[k], h, self.w_hh_t[k]), h)
            return h, h
        H = self.hidden_size
        rz = torch.addmm(x_gates[:, : 2 * H], h, self.w_rz_t[k]).sigmoid_()  # (N, 2H): reset, update
        hn = torch.addmm(self.b_hn[k], h, self.w_n_t[k])  # (N, H): h's part of the new gate
        n = torch.addcmul(x_gates[:, 2 * H:], rz[:, :H], hn).tanh_()  # (N, H)
        h = torch.lerp(n, h, rz[:, H:])  # (1 - z) * n + z * h
        return h, h

    def _rnn(self, x_gates, h, k):
        h = torch.tanh(torch.addmm(x_gates, h, self.w_hh_t[k]))  # (N, H)
        return h, h
