"""How far back a gradient reaches: the norm of d loss_t / d h_{t-k} for lags k = 0..max_lag.

Vanishing: the norm shrinks roughly geometrically with k, so steps far back barely learn.
Exploding: it grows geometrically with k; clipping bounds the step but not the shape.
Built on the reference cells (model/reference.py); owns no plotting and no rendering.
"""
from __future__ import annotations

import copy
import math
from typing import cast

import torch
import torch.nn.functional as F

from ..errors import ChargenError
from ..model import CharRNN, ModelConfig
from ..model.reference import trace


def fresh_model(config: ModelConfig, seed: int) -> CharRNN:
    """An untrained CharRNN in eval mode, initialised as `chargen train --seed seed` starts it.

    The global RNG is left as it was (the seed is applied inside a forked RNG state).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CharRNN(config).eval()


def scale_recurrent(model: CharRNN, factor: float) -> CharRNN:
    """A copy of `model` with every layer's W_hh multiplied by `factor` (the model itself is unchanged).

    A factor above 1 pushes the recurrence towards the exploding regime: for a vanilla RNN at
    default initialisation, 3 is enough to make the gradient grow with the lag.
    """
    if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor >= 0):
        raise ChargenError(f"recurrent scale must be a finite number of 0 or more, got {factor!r}",
                           "try --recurrent-scale 3")
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in scaled.rnn.named_parameters():
            if name.startswith("weight_hh"):
                p.mul_(factor)
    return scaled


def _loss_and_lagged(model: CharRNN, ids: torch.Tensor, max_lag: int):
    """Run ids[:-1] from a zero state; the cross-entropy of ids[-1] at the last step t, and the
    top layer's h at t, t-1, ..., t-max_lag (each (1, H), in the graph)."""
    if max_lag < 0:
        raise ChargenError(f"max_lag must be non-negative, got {max_lag}")
    if ids.dim() != 1 or ids.numel() < max_lag + 2:
        raise ChargenError(f"need a 1-D sequence of at least {max_lag + 2} ids for max_lag {max_lag}",
                           "use a longer text or a smaller --max-lag")
    ids = ids.to(next(model.parameters()).device)
    t = trace(model.rnn, model.config.cell, model.embedding(ids[:-1].unsqueeze(0)))  # B = 1
    logits = model.head(t.outputs[-1])  # (1, V)
    loss = F.cross_entropy(logits, ids[-1:])
    return loss, [t.outputs[-1 - k] for k in range(max_lag + 1)]  # newest first


def _norms(grads) -> list[float]:
    # In float64: squaring a float32 gradient of 1e-25 would underflow to a norm of exactly 0.
    return [0.0 if g is None else g.double().norm().item() for g in grads]


def gradient_flow(model: CharRNN, ids: torch.Tensor, max_lag: int, device: str | torch.device = "cpu") -> list[float]:
    """Norms of d loss / d h_{t-k} for k = 0..max_lag (index k of the list).

    The model reads ids[:-1] from a zero state; the loss is the cross-entropy of predicting
    ids[-1] at the last step t. h is the top layer's hidden state (for an LSTM h, not c),
    and each derivative holds the other state parts at that step fixed. Dropout is off.
    Raises ChargenError when ids has fewer than max_lag + 2 characters.
    """
    device = torch.device(device)
    if next(model.parameters()).device != device:
        model = copy.deepcopy(model).to(device)  # leave the caller's model where it is
    loss, lagged = _loss_and_lagged(model, ids, max_lag)
    return _norms(torch.autograd.grad(loss, lagged, allow_unused=True))


def clipping_effect(model: CharRNN, ids: torch.Tensor, max_lag: int, max_norm: float,
                    device: str | torch.device = "cpu") -> dict:
    """What gradient-norm clipping at `max_norm` does to the gradient of the same loss.

    On a copy of the model: backward into every parameter's .grad, then
    torch.nn.utils.clip_grad_norm_ exactly as training does. `total_norm` is the global L2
    norm before (what clip_grad_norm_ returns), `clipped_norm` the one measured after,
    `scale` their ratio (1 when no clipping was needed), `cosine` the cosine between the
    gradient before and after (1: the direction is kept). `norms` are the lag norms of the
    loss times `scale`, the gradient the clipped step follows: every lag shrinks by the same
    factor, so the profile over lags is unchanged. Non-finite gradients give nan fields.
    """
    if not (isinstance(max_norm, (int, float)) and math.isfinite(max_norm) and max_norm > 0):
        raise ChargenError(f"clip norm must be a positive number, got {max_norm!r}", "try --grad-clip 1")
    model = copy.deepcopy(model).to(device)  # backward writes .grad; the caller's model stays clean
    model.zero_grad(set_to_none=True)
    loss, lagged = _loss_and_lagged(model, ids, max_lag)
    loss.backward(retain_graph=True)  # keep the graph for the rescaled pass below
    params = [p for p in model.parameters() if p.grad is not None]
    grads = [cast(torch.Tensor, p.grad) for p in params]  # the same tensors clipping scales in place
    before = torch.cat([g.detach().double().flatten() for g in grads])  # (P,)
    total = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    after = torch.cat([g.detach().double().flatten() for g in grads])  # (P,)
    b, a = before.norm().item(), after.norm().item()
    scale = a / b if b > 0 else 1.0
    cosine = (before @ after).item() / (a * b) if a * b > 0 else math.nan
    clipped = torch.autograd.grad(loss * scale, lagged, allow_unused=True)
    return {"max_norm": float(max_norm), "total_norm": total, "clipped_norm": a, "scale": scale,
            "cosine": cosine, "norms": _norms(clipped)}


def gradient_flow_report(model: CharRNN, ids: torch.Tensor, max_lag: int, threshold: float = 1e-3,
                         device: str | torch.device = "cpu", max_norm: float | None = None,
                         recurrent_scale: float = 1.0) -> dict:
    """gradient_flow as a plain dict for a table, a plot or JSON.

    `horizon` is the first lag whose norm falls below `threshold` times the lag-0 norm
    (None if none does): a rough "how many steps back does this model still learn from".
    `ratio_last_first` is norm[max_lag] / norm[0] (nan when norm[0] is 0). With
    `recurrent_scale` other than 1 the model is measured with its W_hh scaled (see
    scale_recurrent); with `max_norm`, `clip` holds clipping_effect's dict, else None.
    """
    if recurrent_scale != 1.0:
        model = scale_recurrent(model, recurrent_scale)
    norms = gradient_flow(model, ids, max_lag, device)
    first = norms[0]
    ratio = norms[-1] / first if first > 0 else math.nan
    horizon = next((k for k, n in enumerate(norms) if first > 0 and n < threshold * first), None)
    clip = None if max_norm is None else clipping_effect(model, ids, max_lag, max_norm, device)
    cfg = model.config
    return {"cell": cfg.cell, "num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
            "recurrent_scale": recurrent_scale, "lags": list(range(max_lag + 1)), "norms": norms,
            "ratio_last_first": ratio, "threshold": threshold, "horizon": horizon, "clip": clip}
