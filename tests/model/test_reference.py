"""The hand-written cells in chargen.model.reference against torch's nn.RNN / nn.LSTM / nn.GRU.

Sizes are tiny and all different (B=3, T=4, E=5, H=6, V=7) so a swapped dimension fails.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chargen.model import CharRNN, ModelConfig
from chargen.model.reference import GATE_NAMES, layer_weights, run_layer, trace

B, T, E, H, V = 3, 4, 5, 6, 7
CASES = [(cell, layers) for cell in ("rnn", "lstm", "gru") for layers in (1, 2)]


def tiny_model(cell: str, layers: int) -> CharRNN:
    torch.manual_seed(0)
    # Dropout > 0 in eval mode: the reference must match torch's eval semantics (no dropout).
    cfg = ModelConfig(vocab_size=V, cell=cell, num_layers=layers, hidden_size=H, embedding_dim=E, dropout=0.3)
    model = CharRNN(cfg).eval()
    with torch.no_grad():  # move every bias off its init so a dropped or misplaced bias shows
        for p in model.rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def run_reference(model: CharRNN, x: torch.Tensor, hidden=None):
    """The model's function rebuilt from the cell equations: logits, final hidden, gates."""
    t = trace(model.rnn, model.config.cell, model.embedding(x), hidden)
    return model.head(torch.stack(t.outputs, dim=1)), t.hidden, t.gates


def random_hidden(cell: str, layers: int):
    h = torch.randn(layers, B, H)  # (L, B, H)
    return (h, torch.randn(layers, B, H)) if cell == "lstm" else h


def flat(hidden) -> torch.Tensor:
    return torch.cat([t.flatten() for t in hidden]) if isinstance(hidden, tuple) else hidden.flatten()


@pytest.mark.parametrize("cell,layers", CASES)
@pytest.mark.parametrize("start", ["zeros", "random"])
def test_reference_matches_torch_forward(cell, layers, start):
    """Guards against a wrong gate order, a misplaced GRU reset gate (r * (W_hn h + b_hn)),
    a dropped bias, a layer wired to the wrong input, or an ignored initial hidden state."""
    model = tiny_model(cell, layers)
    x = torch.randint(0, V, (B, T))
    hidden = random_hidden(cell, layers) if start == "random" else None
    want_logits, want_hidden = model(x, hidden)
    logits, got_hidden, _ = run_reference(model, x, hidden)
    assert logits.shape == (B, T, V)
    torch.testing.assert_close(logits, want_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(flat(got_hidden), flat(want_hidden), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell,layers", CASES)
def test_reference_gradients_match_torch(cell, layers):
    """Guards against a reference that computes the right values through a graph torch would
    not (a detach, an in-place write, a weight copied instead of used): every parameter's
    gradient of a cross-entropy loss must agree with the nn.RNN path."""
    model = tiny_model(cell, layers)
    x, y = torch.randint(0, V, (B, T)), torch.randint(0, V, (B, T))
    params = list(model.parameters())

    def grads(logits):
        return torch.autograd.grad(F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)), params)

    want = grads(model(x)[0])
    got = grads(run_reference(model, x)[0])
    for p, g, w in zip(params, got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5, msg=lambda m, p=p: f"{tuple(p.shape)}: {m}")


@pytest.mark.parametrize("cell,layers", CASES)
def test_gates_have_shape_L_B_T_H(cell, layers):
    """Guards against gates stacked in the wrong order (time and batch swapped, layers lost)."""
    _, _, gates = run_reference(tiny_model(cell, layers), torch.randint(0, V, (B, T)))
    assert set(gates) == set(GATE_NAMES[cell])
    for g in gates.values():
        assert g.shape == (layers, B, T, H)


def test_lstm_forget_gate_is_a_sigmoid_of_the_forget_slice():
    """Guards against exposing a pre-activation or the wrong chunk as the forget gate: values
    lie in (0, 1), and a large forget bias pushes them all towards 1 (and only them)."""
    model = tiny_model("lstm", 2)
    x = torch.randint(0, V, (B, T))
    _, _, gates = run_reference(model, x)
    assert ((gates["forget"] > 0) & (gates["forget"] < 1)).all()
    with torch.no_grad():
        for k in range(2):
            getattr(model.rnn, f"bias_ih_l{k}")[H: 2 * H] += 20.0
    _, _, gates = run_reference(model, x)
    assert (gates["forget"] > 0.999).all()
    assert (gates["input"] < 0.999).any() and (gates["output"] < 0.999).any()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_run_layer_is_one_layer_of_torch_step_by_step(cell):
    """The one step-by-step layer loop (trace and the hidden-unit recorder both run it): its state after
    each step is nn.RNN/LSTM/GRU's output there, its final state torch's, and each gate has one value a step."""
    torch.manual_seed(0)
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](5, 6, batch_first=True)
    x = torch.randn(3, 4, 5)  # (B, T, E)
    zero = torch.zeros(3, 6)
    steps, gates = run_layer(cell, list(x.unbind(1)), (zero, zero) if cell == "lstm" else zero, layer_weights(rnn, 0))
    out, hidden = rnn(x)  # (B, T, H)
    hs = torch.stack([s[0] if cell == "lstm" else s for s in steps], 1)  # (B, T, H)
    torch.testing.assert_close(hs, out, atol=1e-6, rtol=1e-5)
    last = steps[-1][1] if cell == "lstm" else steps[-1]
    torch.testing.assert_close(last, hidden[1][0] if cell == "lstm" else hidden[0], atol=1e-6, rtol=1e-5)
    assert set(gates) == set(GATE_NAMES[cell]) and all(len(v) == 4 and v[0].shape == (3, 6) for v in gates.values())
