"""gradient_flow: known vanishing and growing regimes, gating, a brute-force autograd check, and clipping."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from chargen.errors import ChargenError
from chargen.model.charrnn import CharRNN, ModelConfig
from chargen.study.gradflow import (
    clipping_effect,
    fresh_model,
    gradient_flow,
    gradient_flow_report,
    scale_recurrent,
)

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


def linear_rnn(radius: float):
    """A one-layer RNN in its linear regime (tiny inputs, no biases: tanh' ~ 1) whose W_hh is `radius`
    times an orthogonal matrix, so each step back scales the gradient's norm by exactly `radius`."""
    model = make_model("rnn")
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(radius * torch.linalg.qr(torch.randn(H, H))[0])
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.embedding.weight.mul_(1e-4)
    return model


def test_linear_regime_grows_by_the_spectral_radius():
    """Guards against lags counted off by one or in the wrong direction. With tiny inputs the
    tanh stays linear (tanh' ~ 1) and W_hh = 1.5 * orthogonal, so each step back multiplies the
    norm by exactly 1.5. (With large inputs tanh saturates and stops the growth, so no such
    relation holds there.)"""
    norms = gradient_flow(linear_rnn(1.5), random_ids(9), max_lag=6)
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
    assert (report["cell"], report["num_layers"], report["hidden_size"]) == ("rnn", 1, H)
    assert report["recurrent_scale"] == 1.0 and report["clip"] is None


def test_too_short_a_sequence_is_a_domain_error():
    """Guards against a silent IndexError when the text is shorter than the lags asked for."""
    with pytest.raises(ChargenError, match="at least 12 ids"):
        gradient_flow(make_model("gru"), random_ids(11), max_lag=10)


def exploding_model() -> CharRNN:
    """Two layers, W_hh x 4: at these sizes the lag-40 norm is tens of times the lag-0 norm."""
    return scale_recurrent(make_model("rnn", layers=2), 4.0)


def test_fresh_model_is_the_start_of_training_and_keeps_the_global_rng():
    """Guards against a fresh model that differs from what `chargen train --seed` starts from, or
    that reseeds the caller's RNG as a side effect."""
    cfg = ModelConfig(vocab_size=V, cell="gru", num_layers=2, hidden_size=H, embedding_dim=E, dropout=0.0)
    torch.manual_seed(99)
    state = torch.get_rng_state()
    model = fresh_model(cfg, seed=5)
    assert torch.equal(torch.get_rng_state(), state) and not model.training
    torch.manual_seed(5)  # what Trainer does before building its CharRNN
    reference = CharRNN(cfg)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
    other = fresh_model(cfg, seed=6)
    assert not torch.equal(other.rnn.weight_hh_l0, model.rnn.weight_hh_l0)


def test_scale_recurrent_scales_only_w_hh_of_a_copy():
    """Guards against scaling the input weights or biases too, or changing the caller's model."""
    model = make_model("lstm", layers=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scaled = scale_recurrent(model, 3.0)
    for name, value in scaled.state_dict().items():
        want = 3.0 * before[name] if name.startswith("rnn.weight_hh") else before[name]
        assert torch.allclose(value, want, rtol=0, atol=1e-6), name
        assert torch.equal(model.state_dict()[name], before[name]), name
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ChargenError, match="recurrent scale"):
            scale_recurrent(model, bad)


def test_exploding_gradient_is_clipped_to_the_bound_with_its_profile_unchanged():
    """Guards against clipping that does not bound the global norm, that changes the gradient's
    direction (per-element clipping would), or that alters the shape over lags: in the exploding
    regime norm[40] > norm[0]; after clip_grad_norm_ the norm is <= the bound, the cosine to the
    unclipped gradient is 1, and every lag norm shrinks by the same factor."""
    model, ids = exploding_model(), random_ids(42)
    norms = gradient_flow(model, ids, 40)
    assert norms[40] / norms[0] > 10
    clip = clipping_effect(model, ids, 40, max_norm=1.0)
    assert clip["total_norm"] > 10 and clip["clipped_norm"] <= 1.0 + 1e-5
    assert clip["scale"] == pytest.approx(clip["clipped_norm"] / clip["total_norm"], rel=1e-6)
    assert clip["cosine"] == pytest.approx(1.0, abs=1e-9)
    assert clip["norms"] == pytest.approx([clip["scale"] * n for n in norms], rel=1e-5)
    relative_before = [n / norms[0] for n in norms]
    relative_after = [n / clip["norms"][0] for n in clip["norms"]]
    assert relative_after == pytest.approx(relative_before, rel=1e-5)


def test_clipping_measures_the_models_own_parameter_gradient():
    """Guards against a total norm taken over the wrong loss or the wrong parameters: it must equal
    the global norm of the parameter gradient computed through nn.RNN's forward, not the reference cells.
    In float64: in float32 the growing recurrence amplifies the two paths' rounding to about 0.2%."""
    model, ids = exploding_model().double(), random_ids(42)
    logits = model(ids[:-2].unsqueeze(0))[0][:, -1]  # (1, V)
    grads = torch.autograd.grad(F.cross_entropy(logits, ids[-2:-1]), list(model.parameters()))
    want = math.sqrt(sum(g.double().pow(2).sum().item() for g in grads))
    clip = clipping_effect(model, ids[:-1], 30, max_norm=0.5)
    assert clip["total_norm"] == pytest.approx(want, rel=1e-9)
    assert all(p.grad is None for p in model.parameters())  # the caller's model is left clean


def test_clipping_below_the_bound_changes_nothing():
    """Guards against rescaling a gradient that is already inside the bound."""
    model, ids = make_model("gru"), random_ids(20)
    clip = clipping_effect(model, ids, 10, max_norm=1e6)
    assert clip["scale"] == pytest.approx(1.0, abs=1e-12)
    assert clip["clipped_norm"] == pytest.approx(clip["total_norm"], rel=1e-6)
    assert clip["norms"] == pytest.approx(gradient_flow(model, ids, 10), rel=1e-6)
    with pytest.raises(ChargenError, match="clip norm must be a positive number"):
        clipping_effect(model, ids, 10, max_norm=0.0)


def test_report_with_recurrent_scale_and_clip_agrees_with_its_parts():
    """Guards against a report that scales a different model than it clips, or forgets the scale. The
    expectations come from a model scaled by hand here (not by scale_recurrent, which the report uses)
    and from autograd's own parameter gradient, not from clipping_effect. In float64, as in
    test_clipping_measures_the_models_own_parameter_gradient: float32 rounding grows along this recurrence."""
    model, ids = make_model("rnn", layers=2).double(), random_ids(42)
    report = gradient_flow_report(model, ids, 40, max_norm=2.0, recurrent_scale=4.0)
    by_hand = make_model("rnn", layers=2).double()
    with torch.no_grad():
        by_hand.rnn.weight_hh_l0.mul_(4.0)
        by_hand.rnn.weight_hh_l1.mul_(4.0)
    norms = gradient_flow(by_hand, ids, 40)
    assert report["recurrent_scale"] == 4.0 and report["norms"] == pytest.approx(norms, rel=1e-9)
    assert report["ratio_last_first"] > 10 and report["horizon"] is None
    logits = by_hand(ids[:-1].unsqueeze(0))[0][:, -1]  # (1, V)
    grads = torch.autograd.grad(F.cross_entropy(logits, ids[-1:]), list(by_hand.parameters()))
    total = math.sqrt(sum(g.double().pow(2).sum().item() for g in grads))
    clip = report["clip"]
    assert total > 2.0 and clip["max_norm"] == 2.0
    assert clip["total_norm"] == pytest.approx(total, rel=1e-9)
    assert clip["clipped_norm"] == pytest.approx(2.0, rel=1e-6)
    assert clip["scale"] == pytest.approx(2.0 / total, rel=1e-6)
    assert clip["norms"] == pytest.approx([2.0 / total * n for n in norms], rel=1e-6)
    assert torch.equal(model.rnn.weight_hh_l0, make_model("rnn", layers=2).double().rnn.weight_hh_l0)


def test_report_horizon_and_ratio_match_a_hand_computed_decay():
    """Guards against a horizon or ratio computed from the wrong lags: in the linear regime (tiny inputs,
    tanh' ~ 1) with W_hh = 0.5 x orthogonal each step back halves the norm, so norm_k / norm_0 = 0.5^k.
    The first k with 0.5^k < 1.5e-3 is 10 (0.5^9 = 1.95e-3, 0.5^10 = 9.8e-4), and k = 20 gives 0.5^20."""
    report = gradient_flow_report(linear_rnn(0.5), random_ids(25), 20, threshold=1.5e-3)
    assert report["horizon"] == 10
    assert report["ratio_last_first"] == pytest.approx(0.5 ** 20, rel=1e-2)
