"""A lean one-character-at-a-time inference step for sampling on the CPU.

nn.LSTM/GRU/RNN are built for whole sequences; called once per character their
fixed overhead dominates. Here the weights are rearranged once (the embedding and
the first layer's input weights fold into one lookup table) and the cell equations
run as a handful of fused tensor ops. It computes the same function as CharRNN in
eval mode; it owns no training and no sampling policy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .model import CharRNN


class FastStep:
    """Weights of a CharRNN arranged for single-step inference; call it on ids (N,) and a state."""

    def __init__(self, model: CharRNN) -> None:
        cfg = model.config
        self.cell, self.hidden_size, self.num_layers = cfg.cell, cfg.hidden_size, cfg.num_layers
        rnn = model.rnn
        with torch.no_grad():
            p = {name: t.detach().float().clone() for name, t in rnn.named_parameters()}
            emb = model.embedding.weight.detach().float()  # (V, E)
            # Layer 0's input projection of every character, computed once: (V, G*H).
            self.table = torch.addmm(p["bias_ih_l0"], emb, p["weight_ih_l0"].t()).contiguous()
            # Weights stay (out, in) row-major: F.linear then streams each row once, which is
            # what a one-row product is bound by, and splits rows cleanly across threads.
            self.w_ih = [None] + [p[f"weight_ih_l{k}"] for k in range(1, cfg.num_layers)]  # (G*H, H)
            self.b_ih = [None] + [p[f"bias_ih_l{k}"] for k in range(1, cfg.num_layers)]
            self.w_hh = [p[f"weight_hh_l{k}"] for k in range(cfg.num_layers)]  # (G*H, H)
            self.b_hh = [p[f"bias_hh_l{k}"] for k in range(cfg.num_layers)]  # (G*H,)
            self.head_w = model.head.weight.detach().float().clone()  # (V, H)
            self.head_b = model.head.bias.detach().float()  # (V,)

    def zero_state(self, n: int) -> list:
        h = [torch.zeros(n, self.hidden_size) for _ in range(self.num_layers)]
        if self.cell == "lstm":
            return [(hk, torch.zeros_like(hk)) for hk in h]
        return h

    def from_hidden(self, hidden) -> list:
        """Convert nn.RNN-style hidden ((L, N, H) or a pair of them) to this class's per-layer state."""
        if self.cell == "lstm":
            h, c = hidden
            return [(h[k].float().contiguous(), c[k].float().contiguous()) for k in range(self.num_layers)]
        return [hidden[k].float().contiguous() for k in range(self.num_layers)]

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """Logits (N, V) for ids (N,) and the new state; `state` is not modified."""
        x_gates = self.table.index_select(0, ids)  # (N, G*H)
        new_state = []
        for k in range(self.num_layers):
            if k > 0:
                x_gates = F.linear(x, self.w_ih[k], self.b_ih[k])  # (N, G*H)
            x, s = getattr(self, f"_{self.cell}")(x_gates, state[k], k)
            new_state.append(s)
        return F.linear(x, self.head_w, self.head_b), new_state  # (N, V)

    def _lstm(self, x_gates, state, k):
        h, c = state  # (N, H) each
        gates = F.linear(h, self.w_hh[k], x_gates + self.b_hh[k])  # (N, 4H): input, forget, cell, output
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def _gru(self, x_gates, h, k):
        h_gates = F.linear(h, self.w_hh[k], self.b_hh[k])  # (N, 3H): reset, update, new
        H = self.hidden_size
        rz = torch.sigmoid(x_gates[:, : 2 * H] + h_gates[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(x_gates[:, 2 * H:] + r * h_gates[:, 2 * H:])
        h = n + z * (h - n)
        return h, h

    def _rnn(self, x_gates, h, k):
        h = torch.tanh(F.linear(h, self.w_hh[k], x_gates + self.b_hh[k]))  # (N, H)
        return h, h
