"""nn.RNN(batch_first=True, nonlinearity="tanh")'s function on an nn.RNN's own parameters, for
training on the CPU, built as fused_gru.py is: per time step only the sequential part (one
(B, H) product and a tanh forward, one product and a multiply backward); the input products and
every weight gradient are one (T*B)-row product each. It owns no parameters; layers.py decides.
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .fused_gru import Weights, run_stacked
from .reference import layer_weights


def rnn_weights(rnn: torch.nn.RNNBase) -> list[Weights]:
    """An nn.RNN's parameters per layer (w_ih, w_hh, b_ih, b_hh), the very tensors: gradients land on them."""
    return [layer_weights(rnn, k) for k in range(rnn.num_layers)]


def fused_rnn(x: torch.Tensor, hidden: torch.Tensor | None, weights: list[Weights],
              dropout: float = 0.0, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (B, T, H) and final hidden (L, B, H) for input x (B, T, I), as a tanh
    nn.RNN(batch_first=True). `hidden` (L, B, H) or None for zeros; dropout between layers in
    training only, drawing nn.RNN's masks from the same seed. Under CPU autocast the large
    products run in the autocast dtype; the per-step products and the state stay float32."""
    B = x.shape[0]
    dtype, H = weights[0][1].dtype, weights[0][1].shape[1]
    if hidden is None:
        hidden = x.new_zeros(len(weights), B, H, dtype=dtype)  # (L, B, H)
    mm_dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else dtype
    layer_in = x.transpose(0, 1).to(dtype)  # (T, B, I): time-major, each step one contiguous block
    return run_stacked(_RNNLayer, layer_in, hidden, weights, dropout, training, dtype, mm_dtype)


class _RNNLayer(torch.autograd.Function):
    """One tanh RNN layer over a whole sequence: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, mm_dtype):
        T, B, n_in = x.shape
        H = h0.shape[1]
        with torch.autocast("cpu", enabled=False):  # every cast below is explicit
            w_ih_c = w_ih.to(mm_dtype)  # (H, I)
            x_c = x.reshape(T * B, n_in).to(mm_dtype)  # (T*B, I)
            # tanh(u) = 2 sigmoid(2u) - 1 (to float32 rounding): torch's sigmoid kernel is about twice
            # as fast as its tanh, so the products deliver 2u (their inputs doubled, at no cost) and
            # each step runs sigmoid and one fused multiply-add instead of tanh.
            # Every step's input side in one product, both biases folded in.
            pre2 = torch.addmm((b_ih + b_hh).to(mm_dtype), x_c, w_ih_c.t(), beta=2, alpha=2)  # (T*B, H)
            pre2 = pre2.to(x.dtype).view(T, B, H)  # (T, B, H): 2 (x W_ih^T + b_ih + b_hh)
            hs = x.new_empty(T + 1, B, H)  # (T+1, B, H): hs[t] is the state before step t
            hs[0] = h0
            _forward_in_time(pre2, hs, (2 * w_hh).t().contiguous())  # W_hh^T doubled, transposed once
        ctx.save_for_backward(x_c, hs, w_ih_c, w_hh)
        return hs[1:]  # (T, B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):
        x_c, hs, w_ih_c, w_hh = ctx.saved_tensors
        T, B, H = d_out.shape
        n_in, dtype, mm_dtype = x_c.shape[1], hs.dtype, x_c.dtype
        with torch.autocast("cpu", enabled=False):
            # d tanh(u) = 1 - y^2 from the saved outputs, for all steps in one op.
            k = torch.addcmul(hs.new_ones(()), hs[1:], hs[1:], value=-1)  # (T, B, H)
            d_a = _backward_in_time(d_out, k, w_hh)  # (T, B, H): gradients of the pre-activations
            d_h0 = d_a[0].mm(w_hh)  # (B, H)
            d_a = d_a.view(T * B, H)  # (T*B, H)
            d_b = d_a.sum(0)  # (H,): the same for b_ih and b_hh
            d_a_mm = d_a.to(mm_dtype)  # (T*B, H)
            # The weight gradients, all time steps at once: one (H, T*B) x (T*B, .) product each.
            d_w_hh = d_a_mm.t().mm(hs[:-1].reshape(T * B, H).to(mm_dtype)).to(dtype)  # (H, H)
            d_w_ih = d_a_mm.t().mm(x_c).to(dtype)  # (H, I)
            d_x = d_a_mm.mm(w_ih_c).to(dtype).view(T, B, n_in) if ctx.needs_input_grad[0] else None  # (T, B, I)
        return d_x, d_h0, d_w_ih, d_w_hh, d_b, d_b, None


def _forward_in_time(pre2, hs, w_hh_t2):
    """The recurrence: pre2 (T, B, H) arrives holding 2 (x W_ih^T + biases) and is used up; hs[1:]
    (T, B, H) receives the states. w_hh_t2 is 2 W_hh^T (H, H): each step reads it row by row."""
    minus_one = hs.new_full((), -1.0)
    # Each step adds its product into pre2[t] in place (no copy of the addend) and writes the
    # state once; the per-step views are taken in one call each, not by indexing every step.
    states, pres = hs.unbind(0), pre2.unbind(0)  # (B, H) each
    for t in range(pre2.shape[0]):
        s = pres[t].addmm_(states[t], w_hh_t2).sigmoid_()  # (B, H): sigmoid(2u)
        torch.add(minus_one, s, alpha=2, out=states[t + 1])  # 2 sigmoid(2u) - 1 = tanh(u)


def _backward_in_time(d_out, k, w_hh):
    """The sequential part of backprop through time: d_a_t = dh_t * k_t, and
    dh_{t-1} = d_out_{t-1} + d_a_t W_hh, from the last step back to the first."""
    T = d_out.shape[0]
    d_a = torch.empty_like(k)  # (T, B, H)
    dh = d_out.clone()  # (T, B, H): dh[t] gathers the total gradient of step t's output, in place
    dhs, ks, d_as = dh.unbind(0), k.unbind(0), d_a.unbind(0)  # (B, H) each
    for t in range(T - 1, -1, -1):
        torch.mul(dhs[t], ks[t], out=d_as[t])
        if t > 0:
            dhs[t - 1].addmm_(d_as[t], w_hh)
    return d_a
