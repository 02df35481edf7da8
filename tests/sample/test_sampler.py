"""The fast CPU step, the stateful Sampler, --stop and interactive mode."""
from __future__ import annotations

import io

import pytest
import torch
from conftest import plain_ids

from chargen import CharRNN, ModelConfig, SampleConfig, Vocab, generate, sample_texts
from chargen.cli.terminal import interact
from chargen.data.vocab import UNKNOWN
from chargen.errors import ChargenError
from chargen.sample.sampler import Sampler, cut_at_stop, generate_ids, stop_after
from chargen.sample.step import FastStep

VOCAB = Vocab.from_text("abcdefg \n")  # V = 10 with the unknown symbol


def model(cell: str, layers: int = 2, seed: int = 3) -> CharRNN:
    torch.manual_seed(seed)
    m = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=layers, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        for p in m.parameters():  # non-zero biases everywhere, so a misplaced bias shows
            p.add_(0.1 * torch.randn_like(p))
        m.head.weight.mul_(6)
    return m.eval()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 3])
def test_fast_step_equals_model(cell, layers):
    """FastStep folds biases and embeddings; a wrong fold (e.g. the GRU's new-gate bias) changes the function."""
    m = model(cell, layers)
    step = FastStep(m)
    x = torch.randint(len(VOCAB), (3, 7))  # (B=3, T=7)
    with torch.no_grad():
        ref, ref_hidden = m(x)  # (3, 7, V)
    _, hidden = m(x[:, :1])
    state = step.from_hidden(hidden)
    outs = [ref[:, 0]]
    for t in range(1, 7):
        logits, state = step(x[:, t], state)
        outs.append(logits)
    torch.testing.assert_close(torch.stack(outs, 1), ref, atol=1e-5, rtol=1e-5)
    back = state  # FastStep's state is nn.RNN's hidden
    for a, b in zip(back if cell == "lstm" else [back], ref_hidden if cell == "lstm" else [ref_hidden]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (3, 1.0), (0, 0.7)])
def test_rounds_draw_what_the_plain_loop_draws(cell, top_k, top_p):
    """The rounds (FastStep, folded temperature, chunked noise) must draw the same text as the plain
    loop over the whole model, greedy and seeded alike, in 2 streams, with and without filters."""
    m = model(cell)
    for temp in (0.0, 1.0):
        cfg = SampleConfig(length=70, temperature=temp, seed=11, prime="ab", num_samples=2, top_k=top_k, top_p=top_p)
        got = [i.tolist() for i in generate_ids(m, VOCAB, cfg)]
        assert got == plain_ids(m, VOCAB, cfg)
        assert temp == 0 or len({i for row in got for i in row}) > 2  # the draws vary


def test_feed_in_pieces_equals_feed_at_once():
    """Feeding text in several calls must carry the state exactly like one call."""
    m = model("lstm")
    cfg = SampleConfig(temperature=0)
    one, two = Sampler(m, VOCAB, cfg), Sampler(m, VOCAB, cfg)
    one.feed("abc def")
    two.feed("abc")
    two.feed(" def")
    assert [int(i) for i in one.draw(20)] == [int(i) for i in two.draw(20)]


def test_reset_forgets_state():
    """After reset, the sampler must behave as if new."""
    m = model("gru")
    cfg = SampleConfig(temperature=0)
    s = Sampler(m, VOCAB, cfg)
    s.feed("gggg")
    s.draw(15)
    s.reset()
    s.feed("abc")
    fresh = Sampler(m, VOCAB, cfg)
    fresh.feed("abc")
    assert [int(i) for i in s.draw(15)] == [int(i) for i in fresh.draw(15)]


def test_draw_continues_after_drawn_text():
    """Drawing 10 then 10 more must equal drawing 20 at once (the drawn characters are fed back)."""
    m = model("lstm")
    cfg = SampleConfig(temperature=0.9, seed=4)
    a, b = Sampler(m, VOCAB, cfg), Sampler(m, VOCAB, cfg)
    whole = [int(i) for i in a.draw(20)]
    parts = [int(i) for i in b.draw(10)] + [int(i) for i in b.draw(10)]
    assert whole == parts


def test_stop_string_ends_sample():
    """--stop must end the text right after the first occurrence, and only then."""
    assert "".join(stop_after(iter("abcXYdefXY"), "XY")) == "abcXY"
    assert "".join(stop_after(iter("abc"), "")) == "abc"
    assert cut_at_stop("abcXYdefXY", "XY") == "abcXY"
    assert cut_at_stop("abc", "Z") == "abc"
    m = model("gru")
    full = "".join(generate(m, VOCAB, SampleConfig(length=200, temperature=1.0, seed=2)))
    stop = full[30:32]
    cut = "".join(generate(m, VOCAB, SampleConfig(length=200, temperature=1.0, seed=2, stop=stop)))
    assert cut == full[: full.index(stop) + 2]
    texts = sample_texts(m, VOCAB, SampleConfig(length=200, temperature=1.0, seed=2, stop=stop, prime="a"))
    assert texts[0] == "a" + cut_at_stop(texts[0][1:], stop) and texts[0].endswith(stop)


def test_interactive_mode(capsys):
    """-i keeps the state between turns, /reset forgets it, a prime with characters the model never learned
    is read with U+FFFD in their place after one warning line, and the loop goes on until /quit."""
    m = model("lstm")
    cfg = SampleConfig(length=12, temperature=0)
    interact(Sampler(m, VOCAB, cfg), io.StringIO("ab\n\n/reset\nab\nzz\n/quit\nab\n"))
    out, err = capsys.readouterr()
    fresh = Sampler(m, VOCAB, cfg)
    fresh.feed("ab")
    first = "ab" + VOCAB.decode(int(i) for i in fresh.draw(12))
    second = VOCAB.decode(int(i) for i in fresh.draw(12))  # empty line: continue from the carried state
    again = Sampler(m, VOCAB, cfg)
    again.feed("ab")
    assert VOCAB.decode(int(i) for i in again.draw(12)) == first[2:]
    again.feed(UNKNOWN * 2)
    unknown = "zz" + VOCAB.decode(int(i) for i in again.draw(12))
    assert "(state reset)" in err
    assert "warning: the model never learned 'z'; read as its unknown symbol U+FFFD\n" in err
    assert out == first + "\n" + second + "\n" + first + "\n" + unknown + "\n"  # nothing after /quit


def test_stopping_early_keeps_every_seen_character_in_the_state():
    """A caller that stops reading (--stop, interactive) must leave the state after the last character it got."""
    from itertools import islice

    m = model("gru")
    cfg = SampleConfig(temperature=0)
    a, b = Sampler(m, VOCAB, cfg), Sampler(m, VOCAB, cfg)
    seen = [int(i) for i in islice(a.draw(10), 3)]
    assert seen == [int(i) for i in b.draw(3)]
    assert [int(i) for i in a.draw(6)] == [int(i) for i in b.draw(6)]


def test_many_streams_share_one_prime_pass():
    """Greedy samples of N streams after one prime must all equal the single-stream greedy text."""
    m = model("lstm")
    one = sample_texts(m, VOCAB, SampleConfig(length=25, temperature=0, prime="fab"))
    many = sample_texts(m, VOCAB, SampleConfig(length=25, temperature=0, prime="fab", num_samples=4))
    assert many == one * 4


def test_draw_times_each_chunk_and_gives_the_thread_count_back(monkeypatch):
    """One stream draws on one CPU thread; many streams time every chunk for the thread count that
    follows the machine (one step each); `threads=N` fixes it; after the draw, even one dropped
    early, the process has its own count back."""
    from chargen import threads as t
    from chargen.sample.rounds import chunk_size

    seen: list[tuple[int, int]] = []  # (fixed, torch's count) at each timed chunk
    step = t.Threads.step

    def spy(self, seconds):
        seen.append((self.fixed, torch.get_num_threads()))
        return step(self, seconds)

    monkeypatch.setattr(t.Threads, "step", spy)
    monkeypatch.setattr(t, "free_cores", lambda own=0, busy=None: 2)  # a quiet 2-core machine
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        m = model("gru")
        k = chunk_size(torch.device("cpu"), 4, len(VOCAB))
        sample_texts(m, VOCAB, SampleConfig(length=3 * k, num_samples=4, seed=1))
        assert seen == [(0, 2)] * 3 and torch.get_num_threads() == 2
        seen.clear()
        sample_texts(m, VOCAB, SampleConfig(length=50, seed=1))  # one stream: one thread
        assert seen and set(seen) == {(1, 1)} and torch.get_num_threads() == 2
        seen.clear()
        sample_texts(m, VOCAB, SampleConfig(length=2 * k, num_samples=4, seed=1, threads=1))
        assert seen == [(1, 1)] * 2 and torch.get_num_threads() == 2
        drawn = Sampler(m, VOCAB, SampleConfig(num_samples=1, seed=1)).draw(10_000)
        next(drawn)
        assert torch.get_num_threads() == 1
        drawn.close()  # stopped early (--stop, a closed pipe): the count comes back all the same
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ChargenError, match="threads must be an integer from 0 to 4096"):
        SampleConfig(threads=-1)
