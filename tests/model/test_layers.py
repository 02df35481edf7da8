"""Every way of running the recurrent layers (chargen.model.layers) is the same function on the
same parameters: torch's layer, the fused CPU GRU and RNN, per-layer LSTM calls and the reference cells.

Sizes are tiny and all different (B=3, T=4, E=5, H=6, V=7) so a swapped dimension fails.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chargen import ChargenError
from chargen.model import LAYERS, CharRNN, ModelConfig, choose_layers

B, T, E, H, V = 3, 4, 5, 6, 7
RUNS = [("gru", "fused_gru"), ("rnn", "fused_rnn"), ("lstm", "per_layer"), ("rnn", "reference"), ("lstm", "reference"),
        ("gru", "reference")]


def pair(cell: str, layers: str, num_layers: int = 2):
    """A torch-layers model and one of the other kind with the very same weights."""
    torch.manual_seed(3)
    cfg = ModelConfig(vocab_size=V, cell=cell, num_layers=num_layers, hidden_size=H, embedding_dim=E, dropout=0.0)
    plain = CharRNN(cfg)
    with torch.no_grad():  # biases off their init so that a misplaced one shows
        for p in plain.rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    other = CharRNN(cfg, layers)
    other.load_state_dict(plain.state_dict())
    return plain, other


def flat(hidden) -> torch.Tensor:
    return torch.cat([t.flatten() for t in hidden]) if isinstance(hidden, tuple) else hidden.flatten()


@pytest.mark.parametrize("cell,layers", RUNS)
@pytest.mark.parametrize("num_layers", [1, 3])
def test_each_implementation_is_torchs_function_and_gradient(cell, layers, num_layers):
    """Guards against an implementation that drifts from nn.RNN/LSTM/GRU: logits, final state and
    every parameter's gradient agree, from a random starting state, in training mode."""
    plain, other = pair(cell, layers, num_layers)
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    h = torch.randn(num_layers, B, H)  # (L, B, H)
    hidden = (h, torch.randn(num_layers, B, H)) if cell == "lstm" else h
    results = []
    for model in (plain, other):
        model.train()
        logits, last = model(x, hidden)
        grads = torch.autograd.grad(F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)), list(model.parameters()))
        results.append((logits, flat(last), grads))
    (want_logits, want_last, want_grads), (logits, last, grads) = results
    assert logits.shape == (B, T, V)
    torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last, want_last, atol=1e-5, rtol=1e-5)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell,layers", RUNS)
def test_implementations_share_one_state_dict_layout(cell, layers):
    """Guards against a checkpoint that only loads into the implementation that wrote it."""
    plain, other = pair(cell, layers)
    assert list(other.state_dict()) == list(plain.state_dict())
    assert [p.shape for p in other.parameters()] == [p.shape for p in plain.parameters()]


def test_per_layer_lstm_updates_the_models_own_parameters():
    """Guards against per-layer modules holding copies: an optimizer step on the model must change
    what the per-layer calls compute."""
    _, model = pair("lstm", "per_layer")
    x = torch.randint(0, V, (B, T))
    before = model(x)[0].detach()
    with torch.no_grad():
        model.rnn.weight_hh_l1.add_(0.5)
    assert not torch.allclose(model(x)[0], before)


def test_choose_layers_picks_per_device_and_purpose():
    """Guards against the fused GRU leaking into evaluation or onto a GPU, and the per-layer
    LSTM being used where it has not been measured to help."""
    assert choose_layers("gru", 2, "cpu", training=True) == "fused_gru"
    assert choose_layers("gru", 2, "cpu", training=False) == "torch"
    assert choose_layers("lstm", 3, "cuda", training=True) == "per_layer"
    assert choose_layers("lstm", 1, "cuda", training=True) == "torch"
    assert choose_layers("lstm", 3, "cpu", training=True) == "torch"
    assert choose_layers("gru", 2, "cuda", training=True) == "torch"
    assert choose_layers("rnn", 2, "cpu", training=True) == "fused_rnn"
    assert choose_layers("rnn", 2, "cpu", training=False) == "torch"
    assert choose_layers("rnn", 2, "cuda", training=True) == "torch"
    assert set(LAYERS) == {"torch", "fused_gru", "fused_rnn", "per_layer", "reference"}


def test_unknown_implementation_is_a_chargen_error():
    with pytest.raises(ChargenError, match="unknown layer implementation 'cudnn'"):
        CharRNN(ModelConfig(vocab_size=V), "cudnn")


def test_per_layer_lstm_drops_between_layers_only_in_training():
    """Guards against dropout applied in evaluation, or not at all in training."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=V, cell="lstm", num_layers=2, hidden_size=H, embedding_dim=E, dropout=0.5)
    plain, per_layer = CharRNN(cfg), CharRNN(cfg, "per_layer")
    per_layer.load_state_dict(plain.state_dict())
    x = torch.randint(0, V, (B, T))
    torch.testing.assert_close(per_layer.eval()(x)[0], plain.eval()(x)[0])
    assert not torch.allclose(per_layer.train()(x)[1][0], plain.eval()(x)[1][0])
