"""gradient_flow: known vanishing and growing regimes, gating, and a brute-force autograd check."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from chargen.errors import ChargenError
from chargen.gradflow import gradient_flow, gradient_flow_report
from chargen.model import CharRNN, ModelConfig

V, E, H = 7, 5, 16


def make_model(cell: str, layers: int = 1, seed: int = 0) -> CharRNN:
    torch.manual_seed(seed)
    cfg = ModelConfig(vocab_size=V, cell=cell, num_layers=layers, hidden_size=H, embedding_dim=E, dropout=0.0)
    return CharRNN(cfg).eval()


def random_ids(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (n,), generator=torch.Generator().manual_seed(seed))


def test_small_recurrent_weights_vanish():
    """Guards against measuring the wrong derivative (e.g. d loss / d h_t at every lag): with
    W_hh scaled by 0.1 each step back multiplies the gradient by well under 1. The lag-20 norm
    (about 1e-25) must still be positive: a float32 norm would square it to 0."""
    model = make_model("rnn")
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.1)
    norms = gradient_flow(model, random_ids(30), max_lag=20)
    assert len(norms) == 21
    assert 0 < norms[20] < 1e-3 * norms[1]


def test_linear_regime_grows_by_the_spectral_radius():
    """Guards against lags counted off by one or in the wrong direction. With tiny inputs the
    tanh stays linear (tanh' ~ 1) and W_hh = 1.5 * orthogonal, so each step back multiplies the
    norm by exactly 1.5. (With large inputs tanh saturates and stops the growth, so no such
    relation holds there.)"""
    model = make_model("rnn")
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(1.5 * torch.linalg.qr(torch.randn(H, H))[0])
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.embedding.weight.mul_(1e-4)
    norms = gradient_flow(model, random_ids(9), max_lag=6)
    for k in range(6):
        assert norms[k + 1] / norms[k] == pytest.approx(1.5, rel=1e-3)


def test_lstm_with_large_forget_bias_keeps_the_gradient():
    """Guards against gating that does not reach the measurement (e.g. measuring c, or losing
    the cell path): an LSTM whose forget gates sit near 1 carries the gradient 20 steps back
    far better than a vanilla RNN of the same size."""
    lstm, rnn = make_model("lstm"), make_model("rnn")
    with torch.no_grad():
        lstm.rnn.bias_ih_l0[H: 2 * H].fill_(5.0)  # forget gate ~ sigmoid(5) = 0.993
    ids = random_ids(30)
    lstm_norms, rnn_norms = gradient_flow(lstm, ids, 20), gradient_flow(rnn, ids, 20)
    assert lstm_norms[20] > rnn_norms[20]
    assert lstm_norms[20] / lstm_norms[0] > 100 * rnn_norms[20] / rnn_norms[0]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("lag", [0, 3])
def test_agrees_with_brute_force_autograd(cell, lag):
    """Guards against the reference path measuring something other than nn.RNN's own gradient:
    split CharRNN.forward at step t-k, make the top layer's hidden there a leaf, and compare."""
    model = make_model(cell, layers=2)
    ids = random_ids(9)
    inputs, target = ids[:-1].unsqueeze(0), ids[-1:]  # (1, T), (1,)
    split = inputs.shape[1] - lag  # steps up to and including t-k
    _, hidden = model(inputs[:, :split])
    if cell == "lstm":
        h = hidden[0].detach().requires_grad_(True)  # (L, 1, H)
        hidden = (h, hidden[1].detach())
    else:
        h = hidden = hidden.detach().requires_grad_(True)
    if lag == 0:
        logits = model.head(h[-1])  # (1, V)
    else:
        logits = model(inputs[:, split:], hidden)[0][:, -1]  # (1, V)
    want = torch.autograd.grad(F.cross_entropy(logits, target), h)[0][-1].norm().item()
    got = gradient_flow(model, ids, max_lag=3)[lag]
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_report_summarises_the_norms():
    """Guards against a report whose fields disagree with gradient_flow or each other."""
    model = make_model("rnn")
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(0.1)
    ids = random_ids(30)
    report = gradient_flow_report(model, ids, 20, threshold=1e-3)
    norms = gradient_flow(model, ids, 20)
    assert report["lags"] == list(range(21)) and report["norms"] == norms
    assert report["ratio_last_first"] == pytest.approx(norms[20] / norms[0])
    h = report["horizon"]
    assert h is not None and norms[h] < 1e-3 * norms[0] and all(n >= 1e-3 * norms[0] for n in norms[:h])
    assert math.isfinite(report["ratio_last_first"])


def test_too_short_a_sequence_is_a_domain_error():
    """Guards against a silent IndexError when the text is shorter than the lags asked for."""
    with pytest.raises(ChargenError, match="at least 12 ids"):
        gradient_flow(make_model("gru"), random_ids(11), max_lag=10)
