"""model.py: CharRNN shapes, step-by-step equivalence, init, detach_hidden, ModelConfig validation."""
from __future__ import annotations

import math

import pytest
import torch

from chargen import ChargenError, CharRNN, ModelConfig
from chargen.model.charrnn import detach_hidden

B, T, E, H, L, V = 3, 4, 5, 6, 2, 7  # all different, so a swapped dimension fails


def tiny(cell: str, dropout: float = 0.0) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=V, cell=cell, num_layers=L, hidden_size=H, embedding_dim=E,
                               dropout=dropout))


def hidden_tensors(hidden):
    return list(hidden) if isinstance(hidden, tuple) else [hidden]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_forward_shapes(cell):
    """Logits must be (B, T, V) and each hidden tensor (L, B, H); an LSTM carries (h, c), the others h alone."""
    model = tiny(cell)
    logits, hidden = model(torch.randint(V, (B, T)))
    assert logits.shape == (B, T, V)
    assert isinstance(hidden, tuple) == (cell == "lstm")
    tensors = hidden_tensors(hidden)
    assert len(tensors) == (2 if cell == "lstm" else 1)
    assert all(h.shape == (L, B, H) for h in tensors)
    assert model.embedding.weight.shape == (V, E) and model.head.weight.shape == (V, H)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_by_step_equals_whole_sequence(cell):
    """Feeding one character at a time with the carried state must equal one forward over the sequence."""
    model = tiny(cell, dropout=0.3).eval()  # eval: dropout must then be off everywhere
    x = torch.randint(V, (B, T))
    with torch.no_grad():
        whole, whole_hidden = model(x)
        hidden, steps = None, []
        for t in range(T):
            logits, hidden = model(x[:, t: t + 1], hidden)  # (B, 1, V)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), whole, atol=1e-5)
    for a, b in zip(hidden_tensors(hidden), hidden_tensors(whole_hidden)):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_none_hidden_is_zero_state(cell):
    """hidden=None must mean a zero state, so sampling and evaluation start from the same place as training."""
    model = tiny(cell).eval()
    x = torch.randint(V, (B, T))
    zeros = torch.zeros(L, B, H)
    with torch.no_grad():
        a, _ = model(x, None)
        b, _ = model(x, (zeros, zeros.clone()) if cell == "lstm" else zeros)
    assert torch.equal(a, b)


def test_lstm_forget_gate_bias_is_one():
    """Each LSTM layer's forget-gate bias (ih + hh) must start at 1 and the other gates' biases at 0."""
    model = tiny("lstm")
    for layer in range(L):
        bias = getattr(model.rnn, f"bias_ih_l{layer}") + getattr(model.rnn, f"bias_hh_l{layer}")  # (4H,)
        gates = bias.detach().view(4, H)  # torch's order: input, forget, cell, output
        assert torch.equal(gates[1], torch.ones(H))
        assert torch.equal(gates[[0, 2, 3]], torch.zeros(3, H))


def test_gru_bias_not_touched_by_lstm_init():
    """The forget-gate init is LSTM-only; a GRU keeps torch's default uniform biases."""
    bias = tiny("gru").rnn.bias_ih_l0.detach()
    assert not torch.all(bias == 0) and bias.abs().max() <= 1 / math.sqrt(H)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_detach_hidden_cuts_graph_keeps_values(cell):
    """Detaching at a window boundary must stop the gradient (no grad_fn) without changing a value."""
    model = tiny(cell)
    _, hidden = model(torch.randint(V, (B, T)))
    detached = detach_hidden(hidden)
    assert type(detached) is type(hidden)
    for before, after in zip(hidden_tensors(hidden), hidden_tensors(detached)):
        assert before.grad_fn is not None
        assert after.grad_fn is None and not after.requires_grad
        assert torch.equal(before, after)


@pytest.mark.parametrize("field, value", [
    ("cell", "transformer"), ("num_layers", 0), ("num_layers", 1.5), ("hidden_size", -1), ("hidden_size", 70000),
    ("embedding_dim", 0), ("embedding_dim", "5"), ("dropout", 1.0), ("dropout", -0.1), ("dropout", math.nan),
    ("vocab_size", -1),
])
def test_model_config_rejects_bad_values(field, value):
    """Bad shapes must raise ChargenError naming the field, not fail later inside torch."""
    with pytest.raises(ChargenError) as err:
        ModelConfig(**{field: value})
    assert field.split("_")[0] in err.value.message


def test_model_needs_a_vocabulary():
    """vocab_size 0 (a config never given its corpus) must be refused when building the model."""
    with pytest.raises(ChargenError):
        CharRNN(ModelConfig(vocab_size=0, hidden_size=H, embedding_dim=E))


def test_num_parameters_counts_every_weight():
    """num_parameters is reported to users; it must match the tensor sizes for a 2-layer LSTM."""
    model = tiny("lstm")
    layer0 = 4 * H * (E + H) + 2 * 4 * H
    layer1 = 4 * H * (H + H) + 2 * 4 * H
    assert model.num_parameters() == V * E + layer0 + layer1 + V * H + V


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_weight_shapes_match_a_built_model(cell, layers):
    """weight_shapes gives exactly the names and shapes of a built CharRNN's state_dict."""
    from chargen.model import weight_shapes

    config = ModelConfig(vocab_size=V, cell=cell, num_layers=layers, hidden_size=H, embedding_dim=E)
    built = {k: tuple(v.shape) for k, v in CharRNN(config).state_dict().items()}
    assert weight_shapes(config) == built
    assert weight_shapes(config)[f"rnn.weight_ih_l{layers - 1}"] == ({"rnn": 1, "gru": 3, "lstm": 4}[cell] * H,
                                                                      E if layers == 1 else H)
