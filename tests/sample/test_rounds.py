"""Drawing a chunk at a time (rounds.py) must give exactly what drawing one step at a time gives.

On the CPU the chunk's program runs uncaptured; tests/test_gpu.py checks the captured CUDA graph.
"""
from __future__ import annotations

import pytest
import torch

from chargen import CharRNN, ModelConfig, SampleConfig, Vocab
from chargen.data.vocab import UNKNOWN
from chargen.sample.draw import GumbelNoise
from chargen.sample.rounds import chunk_size
from chargen.sample.sampler import Sampler

VOCAB = Vocab(tuple(sorted("abcdefg \n")))  # V = 9, built by hand without the unknown symbol: nothing masked
VOCAB_UNK = Vocab(tuple(sorted("abcdefg \n" + UNKNOWN)), UNKNOWN)  # V = 10, the last id never drawn


def model(cell: str, vocab: Vocab, seed: int = 3) -> CharRNN:
    torch.manual_seed(seed)
    m = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, num_layers=2, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        for p in m.parameters():  # non-zero biases everywhere, so a misplaced bias shows
            p.add_(0.1 * torch.randn_like(p))
        m.head.weight.mul_(4)
        if vocab.unk_id is not None:  # make the unknown symbol the likeliest, so masking it matters
            m.head.bias[vocab.unk_id] = 5.0
    return m.eval()


def draws(m: CharRNN, vocab: Vocab, cfg: SampleConfig, n: int, ahead: bool) -> torch.Tensor:
    sampler = Sampler(m, vocab, cfg)
    sampler.feed(cfg.prime)
    return torch.stack(list(sampler.draw(n, ahead=ahead)))  # (n, N)


def test_noise_take_equals_next_across_blocks():
    """take(k) hands out the values k calls of next() would, also across a block boundary."""
    a = GumbelNoise(torch.Generator().manual_seed(4), 300, 300)  # blocks of 11 steps
    b = GumbelNoise(torch.Generator().manual_seed(4), 300, 300)
    assert a.shape[0] == 11
    got = torch.cat([a.take(7), a.take(7), a.take(20), a.take(1)])  # (35, 300, 300)
    want = torch.stack([b.next() for _ in range(35)])
    assert torch.equal(got, want)


@pytest.mark.parametrize("skip", [0, 4, 9])
def test_noise_spends_nothing_on_the_unknown_symbol(skip):
    """The unknown symbol's column is -inf, and the others hold exactly the noise of a vocabulary without
    it (same seed), so gaining the symbol does not change which characters a seed draws."""
    with_symbol = GumbelNoise(torch.Generator().manual_seed(6), 3, 10, skip=skip).take(40)  # (40, 3, 10)
    without = GumbelNoise(torch.Generator().manual_seed(6), 3, 9).take(40)  # (40, 3, 9)
    assert torch.equal(with_symbol[..., skip], torch.full((40, 3), -torch.inf))
    assert torch.equal(torch.cat([with_symbol[..., :skip], with_symbol[..., skip + 1:]], -1), without)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("temp, top_k, top_p", [(0.0, 0, 1.0), (0.7, 0, 1.0), (1.3, 3, 1.0), (1.0, 0, 0.6)])
def test_chunks_draw_what_single_steps_draw(cell, temp, top_k, top_p):
    """Same seed: two chunks and a remainder give the step-by-step path's ids, in 3 streams,
    with the unknown symbol masked, for greedy, plain, top-k and top-p draws."""
    m = model(cell, VOCAB_UNK)
    k = chunk_size(torch.device("cpu"), 3, len(VOCAB_UNK))
    cfg = SampleConfig(temperature=temp, top_k=top_k, top_p=top_p, seed=21, prime="ab", num_samples=3)
    ahead = draws(m, VOCAB_UNK, cfg, 2 * k + 5, ahead=True)
    step = draws(m, VOCAB_UNK, cfg, 2 * k + 5, ahead=False)
    assert ahead.shape == (2 * k + 5, 3)
    assert torch.equal(ahead, step)
    assert not (ahead == VOCAB_UNK.unk_id).any()
    assert len(set(ahead.flatten().tolist())) > 1  # a constant output would agree trivially


def test_state_after_chunks_carries_on():
    """After whole chunks, the sampler's state is the step-by-step path's: later draws agree too."""
    m = model("lstm", VOCAB)
    cfg = SampleConfig(temperature=0.9, seed=5)
    k = chunk_size(torch.device("cpu"), 1, len(VOCAB))
    fast, slow = Sampler(m, VOCAB, cfg), Sampler(m, VOCAB, cfg)
    first = torch.cat(list(fast.draw(2 * k, ahead=True)) + list(fast.draw(7)))
    second = torch.cat(list(slow.draw(2 * k)) + list(slow.draw(7)))
    assert torch.equal(first, second)
    fast.feed("abc")
    slow.feed("abc")
    assert torch.equal(torch.cat(list(fast.draw(k + 3, ahead=True))), torch.cat(list(slow.draw(k + 3))))


def test_chunk_size_bounds_the_noise_block():
    """64 characters a chunk on a GPU, 32 on a CPU, and never a noise block over 4M values."""
    assert chunk_size(torch.device("cpu"), 1, 65) == 32
    assert chunk_size(torch.device("cuda"), 1, 65) == 64
    assert chunk_size(torch.device("cuda"), 256, 65) == 64
    assert chunk_size(torch.device("cuda"), 65536, 65) == 1
    assert 1 <= chunk_size(torch.device("cuda"), 4096, 465) * 4096 * 465 <= 1 << 22


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_a_chunks_state_is_its_steps_state(cell, layers):
    """K sampled rounds leave the state that feeding their K ids one FastStep at a time leaves, in
    3 streams; greedy rounds draw the argmax of each step's logits."""
    from chargen.sample.rounds import Chunk
    from chargen.sample.step import FastStep

    torch.manual_seed(layers)
    m = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=layers, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        m.head.weight.mul_(4)
        _, hidden = m.eval()(torch.tensor([[1, 2, 3]] * 3))
    step = FastStep(m)
    state = step.from_hidden(hidden)
    greedy, _ = Chunk(step, state, 5, 0.0, None).run(state, None)
    assert torch.equal(greedy[0], step.head(FastStep.top(state)).argmax(-1))
    ids, new = Chunk(step, state, 20, 0.8, None).run(state, GumbelNoise(torch.Generator().manual_seed(2), 3, 9))
    assert ids.shape == (20, 3) and len(set(ids.flatten().tolist())) > 1
    want = state
    for i in range(20):
        _, want = step(ids[i], want)
    for a, b in zip(new if isinstance(new, tuple) else (new,), want if isinstance(want, tuple) else (want,)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_a_cuda_graph_needs_a_model_on_cuda():
    """Guards against a graph chunk built on the CPU, where there is nothing to capture."""
    from chargen.sample.rounds import Chunk
    from chargen.sample.step import FastStep

    step = FastStep(model("gru", VOCAB))
    with pytest.raises(ValueError, match="CUDA"):
        Chunk(step, torch.zeros(2, 1, 6), 4, 1.0, None, mode="graph")
