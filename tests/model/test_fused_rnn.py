"""fused_rnn.py: the CPU training RNN against nn.RNN (values, every gradient, dropout, autocast) and in CharRNN."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from chargen import CharRNN, ModelConfig
from chargen.model.fused_rnn import fused_rnn, rnn_weights

B, T, E, H, V = 3, 5, 4, 6, 7  # all different, so a swapped dimension fails


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


def make_rnn(layers: int, dropout: float = 0.0, dtype=torch.float32) -> torch.nn.RNN:
    torch.manual_seed(0)
    rnn = torch.nn.RNN(E, H, layers, batch_first=True, dropout=dropout).to(dtype)
    with torch.no_grad():  # biases off torch's init so that a misplaced one shows
        for p in rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return rnn


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("given_state", [True, False])
def test_matches_nn_rnn_values_and_gradients(layers, given_state):
    """Outputs, final state and the gradients of both weights, both biases, the input and the
    initial state must match nn.RNN's: a lost path (outputs, final state, initial state) or a
    bias gradient given to one bias only shows here."""
    rnn = make_rnn(layers)
    x = torch.randn(B, T, E, requires_grad=True)
    h0 = torch.randn(layers, B, H, requires_grad=True) if given_state else None
    inputs = [x, *rnn.parameters()] + ([h0] if given_state else [])
    want_out, want_h = rnn(x, h0)  # (B, T, H), (L, B, H)
    got_out, got_h = fused_rnn(x, h0, rnn_weights(rnn))
    assert got_out.shape == (B, T, H) and got_h.shape == (layers, B, H)
    assert torch.allclose(got_out, want_out, atol=1e-5) and torch.allclose(got_h, want_h, atol=1e-5)
    want = grads_of(weighted_loss(want_out, want_h), inputs)
    got = grads_of(weighted_loss(got_out, got_h), inputs)
    for g, w in zip(got, want):
        assert g.shape == w.shape and torch.allclose(g, w, atol=1e-5)
        assert w.abs().max() > 1e-3  # every gradient is far from zero, so the comparison means something


def test_backward_equals_finite_differences_in_float64():
    """The hand-written backward is the derivative of the forward (gradcheck), two layers, T=1 included."""
    rnn = make_rnn(2, dtype=torch.float64)
    params = list(rnn.parameters())

    def f(x, h0, *p):
        return fused_rnn(x, h0, [tuple(p[:4]), tuple(p[4:])])

    for steps in (1, 3):
        x = torch.randn(2, steps, E, dtype=torch.float64, requires_grad=True)
        h0 = torch.randn(2, 2, H, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(f, (x, h0, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("layers", [2, 3])
def test_training_dropout_draws_nn_rnn_masks(layers):
    """In training the same seed gives nn.RNN's dropout masks between layers, and in eval none."""
    rnn = make_rnn(layers, dropout=0.5).train()
    x, h0 = torch.randn(B, T, E), torch.randn(layers, B, H)
    torch.manual_seed(7)
    want_out, want_h = rnn(x, h0)
    torch.manual_seed(7)
    got_out, got_h = fused_rnn(x, h0, rnn_weights(rnn), dropout=0.5, training=True)
    assert torch.allclose(got_out, want_out, atol=1e-5) and torch.allclose(got_h, want_h, atol=1e-5)
    plain_out, plain_h = fused_rnn(x, h0, rnn_weights(rnn), dropout=0.5, training=False)
    eval_out, eval_h = rnn.eval()(x, h0)
    assert torch.allclose(plain_out, eval_out, atol=1e-6) and torch.allclose(plain_h, eval_h, atol=1e-6)
    assert (plain_out - got_out).abs().max() > 0.05


def charrnn(layers: str) -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(ModelConfig(vocab_size=V, cell="rnn", num_layers=2, hidden_size=H, embedding_dim=E,
                               dropout=0.0), layers)


@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_charrnn_step_takes_the_fused_path_with_torchs_gradients(amp):
    """A CharRNN built with fused_rnn runs _RNNLayer in training and gives nn.RNN's loss and
    gradients (fp32: within 1e-5; under bf16 autocast: loss within 2e-2, gradients float32 and
    pointing the same way); without autograd it stays on nn.RNN."""
    model, plain = charrnn("fused_rnn").train(), charrnn("torch").train()
    x, y, h0 = torch.randint(V, (B, T)), torch.randint(V, (B, T)), torch.randn(2, B, H)
    results = []
    for m, dtype in ((model, amp), (plain, None)):
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits, _ = m(x, h0)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        results.append((loss, graph_names(loss), grads_of(loss, list(m.parameters()))))
    (loss, names, grads), (want_loss, want_names, want_grads) = results
    assert "_RNNLayerBackward" in names and "_RNNLayerBackward" not in want_names
    if amp is None:
        assert loss.item() == pytest.approx(want_loss.item(), abs=1e-5)
        assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(grads, want_grads))
    else:
        assert abs(loss.item() - want_loss.item()) < 2e-2 and all(g.dtype == torch.float32 for g in grads)
        flat, want = torch.cat([g.flatten() for g in grads]), torch.cat([g.flatten() for g in want_grads])
        assert F.cosine_similarity(flat, want, dim=0) > 0.99
    with torch.no_grad():
        logits, _ = model(x, h0)
    assert logits.grad_fn is None and torch.allclose(logits, plain(x, h0)[0], atol=1e-5)
