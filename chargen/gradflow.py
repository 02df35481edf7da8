"""How far back a gradient reaches: the norm of d loss_t / d h_{t-k} for lags k = 0..max_lag.

Vanishing: the norm shrinks roughly geometrically with k, so steps far back barely learn.
Exploding: it grows geometrically with k, so one update can blow the weights up (hence clipping).
Built on the reference cells in `cells`, whose per-step hidden states are tensors in the graph.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from .cells import trace
from .errors import ChargenError
from .model import CharRNN


def gradient_flow(model: CharRNN, ids: torch.Tensor, max_lag: int, device: str = "cpu") -> list[float]:
    """Norms of d loss / d h_{t-k} for k = 0..max_lag (index k of the list).

    The model reads ids[:-1] from a zero state; the loss is the cross-entropy of predicting
    ids[-1] at the last step t. h is the top layer's hidden state (for an LSTM h, not c),
    and each derivative holds the other state parts at that step fixed. Dropout is off.
    Raises ChargenError when ids has fewer than max_lag + 2 characters.
    """
    if max_lag < 0:
        raise ChargenError(f"max_lag must be non-negative, got {max_lag}")
    if ids.dim() != 1 or ids.numel() < max_lag + 2:
        raise ChargenError(f"need a 1-D sequence of at least {max_lag + 2} ids for max_lag {max_lag}",
                           "use a longer text or a smaller --max-lag")
    device = torch.device(device)
    if next(model.parameters()).device != device:
        model = copy.deepcopy(model).to(device)  # leave the caller's model where it is
    ids = ids.to(device)
    t = trace(model, ids[:-1].unsqueeze(0))  # B = 1
    logits = model.head(t.outputs[-1])  # (1, V)
    loss = F.cross_entropy(logits, ids[-1:])
    lagged = [t.outputs[-1 - k] for k in range(max_lag + 1)]  # (1, H) each, newest first
    grads = torch.autograd.grad(loss, lagged, allow_unused=True)
    # In float64: squaring a float32 gradient of 1e-25 would underflow to a norm of exactly 0.
    return [0.0 if g is None else g.double().norm().item() for g in grads]


def gradient_flow_report(model: CharRNN, ids: torch.Tensor, max_lag: int,
                         threshold: float = 1e-3, device: str = "cpu") -> dict:
    """gradient_flow as a plain dict for a table or JSON.

    `horizon` is the first lag whose norm falls below `threshold` times the lag-0 norm
    (None if none does): a rough "how many steps back does this model still learn from".
    `ratio_last_first` is norm[max_lag] / norm[0] (nan when norm[0] is 0).
    """
    norms = gradient_flow(model, ids, max_lag, device)
    first = norms[0]
    ratio = norms[-1] / first if first > 0 else math.nan
    horizon = next((k for k, n in enumerate(norms) if first > 0 and n < threshold * first), None)
    return {"cell": model.config.cell, "lags": list(range(max_lag + 1)), "norms": norms,
            "ratio_last_first": ratio, "threshold": threshold, "horizon": horizon}
