"""Drawing a chunk at a time (chunked.py) must give exactly what drawing one step at a time gives.

On the CPU the chunk's program runs uncaptured; tests/test_gpu.py checks the captured CUDA graph.
"""
from __future__ import annotations

import pytest
import torch

from chargen import CharRNN, ModelConfig, SampleConfig, Vocab
from chargen.chunked import chunk_size
from chargen.corpus import UNKNOWN
from chargen.sample import GumbelNoise, Sampler

VOCAB = Vocab.from_text("abcdefg \n")  # V = 9
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
def test_scripted_rounds_equal_the_python_program_bit_for_bit(cell, layers, monkeypatch):
    """On the CPU an unfiltered chunk runs as TorchScript (scripted.py): the same ops as FastStep's
    Python, so the same ids and exactly the same state, in 3 streams, greedy and sampled."""
    from chargen import chunked, scripted
    from chargen.fastpath import FastStep

    assert scripted.compiled() is not None  # this torch scripts it: the fast program is in use
    torch.manual_seed(layers)
    m = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=layers, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        m.head.weight.mul_(4)
        _, hidden = m(torch.tensor([[1, 2, 3]] * 3))
    step = FastStep(m.eval())
    state = step.from_hidden(hidden)
    for temp in (0.0, 0.8):
        runs = []
        for on in (True, False):
            monkeypatch.setattr(chunked, "SCRIPTED", on)
            chunk = chunked.Chunk(step, state, 20, temp, None)
            assert chunk.scripted == on
            ids, new = chunk.run(state, GumbelNoise(torch.Generator().manual_seed(2), 3, len(VOCAB)))
            runs.append((ids, [t.clone() for t in (new if isinstance(new, tuple) else (new,))]))
        (ids_a, state_a), (ids_b, state_b) = runs
        assert ids_a.shape == (20, 3) and torch.equal(ids_a, ids_b)
        assert temp == 0 or len(set(ids_a.flatten().tolist())) > 1  # sampled text varies
        assert all(torch.equal(a, b) for a, b in zip(state_a, state_b))
        assert not torch.equal(state_a[0], state[0] if isinstance(state, tuple) else state)  # it moved on


def test_filters_keep_the_python_program():
    """Top-k and top-p are Python functions, so a filtered chunk does not run as TorchScript."""
    from chargen import chunked
    from chargen.fastpath import FastStep

    m = model("gru", VOCAB)
    step = FastStep(m)
    state = step.from_hidden(torch.zeros(2, 1, 6))
    assert chunked.Chunk(step, state, 4, 1.0, None).scripted
    assert not chunked.Chunk(step, state, 4, 1.0, None, filter_fn=lambda x: x).scripted


def test_rounds_that_fail_to_run_fall_back_to_the_python_program(monkeypatch):
    """Should TorchScript compile the rounds and then fail to run them (a future torch), the chunk
    runs its Python program instead, from the same state: the same ids as single steps."""
    from chargen import scripted

    def broken(*args, **kwargs):
        raise torch.jit.Error("cannot run")

    m = model("lstm", VOCAB)
    cfg = SampleConfig(temperature=0.8, seed=4, prime="ab")
    want = draws(m, VOCAB, cfg, 40, ahead=False)
    monkeypatch.setattr(scripted, "rounds", broken)
    sampler = Sampler(m, VOCAB, cfg)
    sampler.feed(cfg.prime)
    got = torch.stack(list(sampler.draw(40, ahead=True)))
    assert not sampler.chunk.scripted  # it tried, and stopped trying
    assert torch.equal(got, want) and len(set(got.flatten().tolist())) > 1
