"""nn.GRU(batch_first=True)'s function on an nn.GRU's own parameters, for training on the CPU: each
layer is one autograd Function whose backward loops over time only for the sequential part
(dh_{t-1}) and then finds dW, db and dx in one (T*B)-row product each, where autograd would
make one small product per step. It owns no parameters; layers.py decides when to use it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .reference import layer_weights

Weights = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # w_ih, w_hh, b_ih, b_hh


def gru_weights(rnn: torch.nn.GRU) -> list[Weights]:
    """An nn.GRU's parameters per layer, the very tensors (not copies): gradients land on them."""
    return [layer_weights(rnn, k) for k in range(rnn.num_layers)]


def fused_gru(x: torch.Tensor, hidden: torch.Tensor | None, weights: list[Weights],
              dropout: float = 0.0, training: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (B, T, H) and final hidden (L, B, H) for input x (B, T, I), as nn.GRU(batch_first=True).

    `hidden` (L, B, H) or None for zeros. In training, dropout with probability `dropout` hits
    every layer's output except the last, drawing the same masks as nn.GRU from the same seed.
    Under CPU autocast the large products run in the autocast dtype (bf16), as nn.GRU's do; the
    per-step products, the gates and the carried state stay in the weights' dtype (float32).
    """
    B, T, _ = x.shape
    dtype, H = weights[0][1].dtype, weights[0][1].shape[1]  # the state's dtype is the weights'
    if hidden is None:
        hidden = x.new_zeros(len(weights), B, H, dtype=dtype)  # (L, B, H)
    mm_dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else dtype
    # Time-major inside, as nn.GRU itself does: each step then reads one contiguous (B, .) block.
    layer_in = x.transpose(0, 1).to(dtype)  # (T, B, I)
    return run_stacked(_GRULayer, layer_in, hidden, weights, dropout, training, dtype, mm_dtype)


def run_stacked(layer: type[torch.autograd.Function], layer_in: torch.Tensor, hidden: torch.Tensor,
                weights: list[Weights], dropout: float, training: bool, dtype: torch.dtype,
                mm_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked layers, each `layer.apply`d over the whole time-major sequence layer_in (T, B, I):
    outputs (B, T, H) and final hidden (L, B, H). Dropout between layers only, like nn.RNN/GRU:
    never on the last layer's output, whose dropout (if any) is the model's own, and never on the
    recurrent connection."""
    finals = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        out = layer.apply(layer_in.contiguous(), hidden[k].to(dtype), w_ih, w_hh, b_ih, b_hh, mm_dtype)  # (T, B, H)
        finals.append(out[-1])  # (B, H)
        last = k == len(weights) - 1
        layer_in = out if last or dropout == 0 or not training else F.dropout(out, dropout, training=True)
    return layer_in.transpose(0, 1), torch.stack(finals)  # (B, T, H), (L, B, H)


class _GRULayer(torch.autograd.Function):
    """One GRU layer over a whole sequence. Gate order as torch's: reset r, update z, new n.

    r, z = sigmoid(x W_ir,iz + b_i + h W_hr,hz + b_h); n = tanh(x W_in + b_in + r * (h W_hn + b_hn));
    h' = (1 - z) * n + z * h (see cells.gru_cell).
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, mm_dtype):
        T, B, I = x.shape  # noqa: E741 - I is the input size, as in every shape comment here
        H = h0.shape[1]
        with torch.autocast("cpu", enabled=False):  # every cast below is explicit
            w_ih_c = w_ih.to(mm_dtype)  # (3H, I)
            # b_hh's r and z parts simply add to b_ih's; only b_hn sits inside r * (...) and stays per step.
            b_x = torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H:]])  # (3H,)
            x_c = x.reshape(T * B, I).to(mm_dtype)  # (T*B, I)
            # All steps' input projections in one product; it becomes the gate buffer in place.
            gates = torch.addmm(b_x.to(mm_dtype), x_c, w_ih_c.t()).to(x.dtype).view(T, B, 3 * H)  # (T, B, 3H)
            hs = x.new_empty(T + 1, B, H)  # (T+1, B, H): hs[t] is the state before step t
            hs[0] = h0
            hn = x.new_empty(T, B, H)  # (T, B, H): h W_hn^T + b_hn of each step
            # The per-step products stay in the state's dtype even under autocast: at (B, H) =
            # (32, 256) a bf16 product saves no more than the casts around it cost (measured).
            _forward_in_time(gates, hs, hn, w_hh.t().contiguous(), b_hh[2 * H:])  # w_hh^T: (H, 3H)
        ctx.save_for_backward(x_c, hs, gates, hn, w_ih_c, w_hh)
        return hs[1:]  # (T, B, H)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):
        x_c, hs, gates, hn, w_ih_c, w_hh = ctx.saved_tensors
        T, B, H = d_out.shape
        I, dtype, mm_dtype = x_c.shape[1], hs.dtype, x_c.dtype  # noqa: E741 - the input size
        with torch.autocast("cpu", enabled=False):
            k_h, a_n = _gate_factors(hs[:-1], gates, hn)  # (T, B, 3H), (T, B, H)
            d_hs, d_g = _backward_in_time(d_out, k_h, gates[..., H: 2 * H], w_hh)  # (T+1, B, H), (T, B, 3H)
            d_g = d_g.view(T * B, 3 * H)  # (T*B, 3H): the hidden side's gate gradients
            d_b_hh = d_g.sum(0)  # (3H,)
            d_g_mm = d_g.to(mm_dtype)  # (T*B, 3H); d_g itself in float32, so d_g is done with before the overwrite
            # The weight gradients, all time steps at once: one (3H, T*B) x (T*B, .) product each.
            d_w_hh = d_g_mm.t().mm(hs[:-1].reshape(T * B, H).to(mm_dtype)).to(dtype)  # (3H, H)
            # The input side's gate gradients differ only in n: overwrite that part in place.
            d_gx_n = (d_hs[1:] * a_n).view(T * B, H)  # (T*B, H)
            d_b_ih = torch.cat([d_b_hh[: 2 * H], d_gx_n.sum(0)])  # (3H,)
            d_g_mm[:, 2 * H:] = d_gx_n
            d_w_ih = d_g_mm.t().mm(x_c).to(dtype)  # (3H, I)
            d_x = d_g_mm.mm(w_ih_c).to(dtype).view(T, B, I) if ctx.needs_input_grad[0] else None  # (T, B, I)
        return d_x, d_hs[0], d_w_ih, d_w_hh, d_b_ih, d_b_hh, None


def _forward_in_time(gates, hs, hn, w_hh_t, b_hn):
    """The recurrence, in place: gates (T, B, 3H) arrive holding x W_ih^T + biases and leave
    holding r, z, n; hs[1:] (T, B, H) receives the states and hn (T, B, H) h W_hn^T + b_hn."""
    H = hn.shape[2]
    # Two products a step, each adding into its destination (addmm's out=): no (B, 3H) temporary
    # and no separate bias or accumulation ops. b_hh's r, z parts are in gates already.
    w_rz, w_n = w_hh_t[:, : 2 * H].contiguous(), w_hh_t[:, 2 * H:].contiguous()  # (H, 2H), (H, H)
    for t in range(gates.shape[0]):
        h = hs[t]  # (B, H)
        rz = gates[t, :, : 2 * H]  # (B, 2H)
        torch.addmm(rz, h, w_rz, out=rz).sigmoid_()
        hn_t = torch.addmm(b_hn, h, w_n, out=hn[t])  # (B, H)
        n = gates[t, :, 2 * H:].addcmul_(rz[:, :H], hn_t).tanh_()  # (B, H)
        torch.lerp(n, h, rz[:, H:], out=hs[t + 1])  # (1 - z) * n + z * h


def _gate_factors(h_prev, gates, hn):
    """dL/d(gate pre-activations) = dh_t * factor: every factor depends only on the forward pass,
    so all time steps get theirs here in a few large element-wise ops instead of inside the loop.

    Returns k_h (T, B, 3H), the factors of the hidden side's pre-activations (r, z, and
    h W_hn + b_hn), and a_n (T, B, H), the input side's n factor; its r and z factors equal k_h's.
    """
    r, z, n = gates.chunk(3, dim=2)  # (T, B, H) each
    k_h = torch.empty_like(gates)  # (T, B, 3H)
    k_r, k_z, k_n = k_h.chunk(3, dim=2)  # (T, B, H) each, views
    one = gates.new_ones(())
    # d sigmoid(u) = y (1 - y) and d tanh(u) = 1 - y^2, in terms of the outputs y saved by the forward;
    # each written by one op into its place (addcmul: 1 - y^2 and y - y^2 without temporaries).
    one_z = torch.sub(one, z)  # (T, B, H)
    a_n = torch.addcmul(one, n, n, value=-1).mul_(one_z)  # h' = (1 - z) n + z h, n = tanh(.)
    torch.mul(a_n, hn, out=k_r).mul_(torch.addcmul(r, r, r, value=-1))  # r enters n as r * hn
    torch.sub(h_prev, n, out=k_z).mul_(one_z.mul_(z))
    torch.mul(a_n, r, out=k_n)
    return k_h, a_n


def _backward_in_time(d_out, k_h, z, w_hh):
    """The sequential part of backprop through time: per step only dh_t, its gate gradients,
    and dh_{t-1} = d_out_{t-1} + dh_t * z_t + d_gates_t W_hh.

    Returns d_hs (T+1, B, H), where d_hs[0] is the initial state's gradient and d_hs[t+1] the
    total gradient of step t's output, and the hidden side's gate gradients d_g (T, B, 3H).
    """
    T, B, H = d_out.shape
    d_hs = k_h.new_empty(T + 1, B, H)  # (T+1, B, H)
    d_g = torch.empty_like(k_h)  # (T, B, 3H)
    d_hs[T] = d_out[T - 1]
    for t in range(T - 1, -1, -1):
        dh = d_hs[t + 1]  # (B, H)
        torch.mul(k_h[t].view(B, 3, H), dh.unsqueeze(1), out=d_g[t].view(B, 3, H))  # (B, 3H)
        carried = torch.addcmul(d_out[t - 1], dh, z[t]) if t > 0 else dh * z[t]  # (B, H)
        torch.addmm(carried, d_g[t], w_hh, out=d_hs[t])  # the product adds into it: one op fewer
    return d_hs, d_g
