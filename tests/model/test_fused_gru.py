"""fused_gru.py: the CPU training GRU against nn.GRU (values, every gradient, dropout, autocast) and in CharRNN."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chargen import CharRNN, ModelConfig
from chargen.model.fused_gru import fused_gru, gru_weights

B, T, E, H, V = 3, 5, 4, 6, 7  # all different, so a swapped dimension fails


def make_gru(layers: int, dropout: float = 0.0, dtype=torch.float32) -> torch.nn.GRU:
    torch.manual_seed(0)
    return torch.nn.GRU(E, H, layers, batch_first=True, dropout=dropout).to(dtype)


def weighted_loss(out: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
    """A loss that gives every output element and every final-state element its own gradient."""
    g = torch.Generator().manual_seed(1)
    return (out * torch.randn(out.shape, generator=g)).sum() + (h_n * torch.randn(h_n.shape, generator=g)).sum()


def grads_of(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors))


def graph_names(t: torch.Tensor) -> set[str]:
    """Names of every autograd node behind t."""
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(fn for fn, _ in node.next_functions)
    return {node.name() for node in seen}


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("given_state", [True, False])
def test_matches_nn_gru_values_and_gradients(layers, given_state):
    """Outputs, final state and the gradients of every weight, bias, the input and the initial state
    must match nn.GRU's: a wrong gate order, a bias on the wrong side of r * (.), or a path whose
    gradient is lost (through the outputs, the final state or the initial state) shows here."""
    rnn = make_gru(layers)
    x = torch.randn(B, T, E, requires_grad=True)
    h0 = torch.randn(layers, B, H, requires_grad=True) if given_state else None
    inputs = [x, *rnn.parameters()] + ([h0] if given_state else [])
    want_out, want_h = rnn(x, h0)  # (B, T, H), (L, B, H)
    got_out, got_h = fused_gru(x, h0, gru_weights(rnn))
    assert got_out.shape == (B, T, H) and got_h.shape == (layers, B, H)
    assert torch.allclose(got_out, want_out, atol=1e-5)
    assert torch.allclose(got_h, want_h, atol=1e-5)
    assert torch.equal(got_h[-1], got_out[:, -1])  # the top layer's final state is its last output
    want = grads_of(weighted_loss(want_out, want_h), inputs)
    got = grads_of(weighted_loss(got_out, got_h), inputs)
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.allclose(g, w, atol=1e-5)
        assert w.abs().max() > 1e-3  # every gradient is far from zero, so the comparison means something


def test_backward_equals_finite_differences_in_float64():
    """The hand-written backward must be the derivative of the forward, for the input, the initial
    state and all eight weights of two layers (gradcheck compares with finite differences)."""
    rnn = make_gru(2, dtype=torch.float64)
    x = torch.randn(2, 3, E, dtype=torch.float64, requires_grad=True)  # B=2, T=3 keep gradcheck quick
    h0 = torch.randn(2, 2, H, dtype=torch.float64, requires_grad=True)
    params = list(rnn.parameters())

    def f(x, h0, *p):
        return fused_gru(x, h0, [tuple(p[:4]), tuple(p[4:])])

    assert torch.autograd.gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-6)


def test_eval_with_dropout_is_nn_gru_in_eval():
    """Outside training, dropout must be off: identical to an nn.GRU with dropout in eval mode."""
    rnn = make_gru(2, dropout=0.5).eval()
    x, h0 = torch.randn(B, T, E), torch.randn(2, B, H)
    want_out, want_h = rnn(x, h0)
    got_out, got_h = fused_gru(x, h0, gru_weights(rnn), dropout=0.5, training=False)
    assert torch.allclose(got_out, want_out, atol=1e-6) and torch.allclose(got_h, want_h, atol=1e-6)


@pytest.mark.parametrize("layers", [2, 3])
def test_training_dropout_draws_nn_gru_masks(layers):
    """In training, the same seed must give nn.GRU's dropout masks between layers: same outputs,
    same gradients, and different from the dropout-free outputs (so dropout really happened)."""
    rnn = make_gru(layers, dropout=0.5).train()
    x = torch.randn(B, T, E, requires_grad=True)
    h0 = torch.randn(layers, B, H)
    torch.manual_seed(7)
    want_out, want_h = rnn(x, h0)
    torch.manual_seed(7)
    got_out, got_h = fused_gru(x, h0, gru_weights(rnn), dropout=0.5, training=True)
    assert torch.allclose(got_out, want_out, atol=1e-5) and torch.allclose(got_h, want_h, atol=1e-5)
    inputs = [x, *rnn.parameters()]
    for g, w in zip(grads_of(weighted_loss(got_out, got_h), inputs), grads_of(weighted_loss(want_out, want_h), inputs)):
        assert torch.allclose(g, w, atol=1e-5)
    plain_out, _ = fused_gru(x, h0, gru_weights(rnn))
    assert (plain_out - got_out).abs().max() > 0.05


def test_dropout_only_between_layers():
    """Dropout hits a layer's output on its way up, never the last layer's output and never a state:
    one layer trains exactly as in eval, and layer 0's final state is unchanged by dropout."""
    one = make_gru(1)
    x, h0 = torch.randn(B, T, E), torch.randn(1, B, H)
    dropped = fused_gru(x, h0, gru_weights(one), dropout=0.5, training=True)
    plain = fused_gru(x, h0, gru_weights(one))
    assert all(torch.equal(a, b) for a, b in zip(dropped, plain))
    two = make_gru(2)
    h0 = torch.randn(2, B, H)
    (_, dropped_h), (_, plain_h) = (fused_gru(x, h0, gru_weights(two), dropout=0.5, training=True),
                                   fused_gru(x, h0, gru_weights(two)))
    assert torch.equal(dropped_h[0], plain_h[0])
    assert (dropped_h[1] - plain_h[1]).abs().max() > 1e-3


def charrnn(dropout: float = 0.0, layers: str = "fused_gru") -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=V, cell="gru", num_layers=2, hidden_size=H, embedding_dim=E,
                               dropout=dropout), layers)


def train_step_grads(model: CharRNN, x, y, h0, amp: torch.dtype | None = None):
    """Loss, graph node names and the gradients of every parameter for one training step."""
    with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        logits, hidden = model(x, h0)  # (B, T, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    return loss, graph_names(loss), grads_of(loss, list(model.parameters()))


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_charrnn_step_same_as_torchs_gru(dropout):
    """A CharRNN built with the fused GRU layers must take the fused path and give the same loss and
    gradients as one built with nn.GRU's; with dropout, the same seed gives the same masks."""
    model = charrnn(dropout).train()
    plain = charrnn(dropout, "torch").train()
    x, y, h0 = torch.randint(V, (B, T)), torch.randint(V, (B, T)), torch.randn(2, B, H)
    torch.manual_seed(3)
    loss, names, grads = train_step_grads(model, x, y, h0)
    torch.manual_seed(3)
    want_loss, want_names, want_grads = train_step_grads(plain, x, y, h0)
    assert "_GRULayerBackward" in names and "_GRULayerBackward" not in want_names
    assert loss.item() == pytest.approx(want_loss.item(), abs=1e-5)
    for (name, _), g, w in zip(model.named_parameters(), grads, want_grads):
        assert torch.allclose(g, w, atol=1e-5), name


def test_charrnn_without_grad_keeps_nn_gru():
    """Evaluation and sampling (no autograd) stay on nn.GRU, and its logits equal the fused path's."""
    model = charrnn().eval()
    x = torch.randint(V, (B, T))
    fused_logits, fused_hidden = model(x)
    assert "_GRULayerBackward" in graph_names(fused_logits)
    with torch.no_grad():
        logits, hidden = model(x)
    assert torch.allclose(fused_logits, logits, atol=1e-5) and torch.allclose(fused_hidden, hidden, atol=1e-5)


def test_bf16_autocast_step_close_to_fp32():
    """Under the trainer's bf16 autocast the large products run in bf16: the loss must stay within
    2e-2 of fp32, the gradients point the same way, and the weights' gradients stay float32."""
    model = charrnn().train()
    x, y, h0 = torch.randint(V, (B, T)), torch.randint(V, (B, T)), torch.randn(2, B, H)
    loss32, _, grads32 = train_step_grads(model, x, y, h0)
    loss16, names, grads16 = train_step_grads(model, x, y, h0, amp=torch.bfloat16)
    assert "_GRULayerBackward" in names
    assert abs(loss16.item() - loss32.item()) < 2e-2
    flat32, flat16 = torch.cat([g.flatten() for g in grads32]), torch.cat([g.flatten() for g in grads16])
    assert F.cosine_similarity(flat32, flat16, dim=0) > 0.99
    assert all(g.dtype == torch.float32 for g in grads16)
