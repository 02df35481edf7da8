"""sample.py: seeds, greedy decoding, top-k / top-p filtering, priming, SampleConfig validation."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chargen import (
    ChargenError,
    CharRNN,
    ModelConfig,
    SampleConfig,
    Vocab,
    generate,
    load_model,
    sample_texts,
    train,
)
from chargen.data.vocab import UNKNOWN
from chargen.sample.draw import filter_logits
from chargen.sample.sampler import generate_ids

VOCAB = Vocab.from_text("abcdef\n")  # V = 8 with the unknown symbol


def untrained(cell: str = "gru") -> CharRNN:
    """A random model with a near-flat but not uniform distribution: samples vary, argmax is well defined."""
    torch.manual_seed(5)
    model = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=2, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        model.head.weight.mul_(8)  # sharper logits, so greedy and sampled texts differ
    return model.eval()


@pytest.fixture(scope="module")
def trained(trained_run):
    model, vocab, _ = load_model(trained_run.best)
    return model, vocab


def reference_greedy(model: CharRNN, vocab: Vocab, prime: str, length: int) -> str:
    """Naive decoder: run the prime (or a newline) through forward, then argmax one character at a time."""
    ids = vocab.encode(prime) if prime else torch.tensor([vocab.chars.index("\n")])
    with torch.no_grad():
        logits, hidden = model(ids[None])  # (1, P, V)
        out = []
        for _ in range(length):
            nxt = logits[0, -1].argmax()
            out.append(vocab.chars[int(nxt)])
            logits, hidden = model(nxt.view(1, 1), hidden)  # (1, 1, V)
    return prime + "".join(out)


def test_same_seed_same_text(trained):
    """One seed must always give the same text, through both the list and the streaming API."""
    model, vocab = trained
    cfg = SampleConfig(length=60, seed=11, prime="How ")
    first = sample_texts(model, vocab, cfg)
    assert first == sample_texts(model, vocab, cfg)
    assert "".join(generate(model, vocab, cfg)) == first[0][len("How "):]


def test_different_seeds_differ():
    """Different seeds must give different texts (a seed that is ignored would make them equal)."""
    model = untrained()
    texts = {sample_texts(model, VOCAB, SampleConfig(length=50, seed=s))[0] for s in range(4)}
    assert len(texts) == 4


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_temperature_zero_is_greedy_and_seed_free(cell):
    """Temperature 0 must be argmax at every step (same as a naive decoder) whatever the seed."""
    model = untrained(cell)
    texts = [sample_texts(model, VOCAB, SampleConfig(length=40, temperature=0, seed=s, prime="cab"))[0]
             for s in (1, 2)]
    assert texts[0] == texts[1] == reference_greedy(model, VOCAB, "cab", 40)


def test_top_k_one_is_greedy(trained):
    """top_k=1 at any temperature must reduce sampling to argmax."""
    model, vocab = trained
    greedy = sample_texts(model, vocab, SampleConfig(length=50, temperature=0, prime="Up"))
    for seed in (1, 2):
        assert sample_texts(model, vocab, SampleConfig(length=50, temperature=1.5, top_k=1, seed=seed,
                                                       prime="Up")) == greedy


def test_greedy_from_empty_prime_starts_after_newline(trained):
    """An empty prime must warm the state on a newline, as if a new line of text began."""
    model, vocab = trained
    text = sample_texts(model, vocab, SampleConfig(length=30, temperature=0))[0]
    assert text == reference_greedy(model, vocab, "", 30)


def test_prime_warms_state(trained):
    """Text after a prime must continue from the state after the whole prime, not from a zero state."""
    model, vocab = trained
    prime = "Twinkle, twinkle, little "
    text = sample_texts(model, vocab, SampleConfig(length=30, temperature=0, prime=prime))[0]
    assert text == reference_greedy(model, vocab, prime, 30)
    assert text.startswith(prime)


def test_samples_follow_model_distribution():
    """First characters of many samples must be distributed as softmax(logits / T) over every character but
    the unknown symbol (never drawn, its mass shared out), and top-k must cut the rest."""
    model = untrained("lstm")
    prime, n, temp = "ab", 4000, 1.5
    with torch.no_grad():
        logits = model(VOCAB.encode(prime)[None])[0][0, -1]  # (V,)
        model.head.bias[VOCAB.unk_id] += logits.max() - logits[VOCAB.unk_id] + 3  # now far the likeliest
        logits[VOCAB.unk_id] = -math.inf
    expected = torch.softmax(logits / temp, dim=-1)
    texts = sample_texts(model, VOCAB, SampleConfig(length=1, temperature=temp, prime=prime, seed=3,
                                                    num_samples=n))
    freq = torch.tensor([sum(t[-1] == c for t in texts) / n for c in VOCAB.chars])
    assert (freq - expected).abs().max() < 0.03  # about 4 standard deviations at n=4000

    top2 = torch.topk(logits, 2).indices
    texts = sample_texts(model, VOCAB, SampleConfig(length=1, temperature=temp, top_k=2, prime=prime, seed=3,
                                                    num_samples=n))
    drawn = {t[-1] for t in texts}
    assert drawn == {VOCAB.chars[int(i)] for i in top2}
    p = expected[top2] / expected[top2].sum()
    share = sum(t[-1] == VOCAB.chars[int(top2[0])] for t in texts) / n
    assert share == pytest.approx(p[0].item(), abs=0.03)


# -- filter_logits ----------------------------------------------------------------------
def test_top_p_keeps_minimal_nucleus():
    """top_p must keep the fewest likeliest characters whose mass reaches p (the likeliest always survives)."""
    probs = torch.tensor([0.1, 0.5, 0.05, 0.25, 0.1])  # sorted: 0.5, 0.25, 0.1, 0.1, 0.05
    logits = probs.log()[None]  # (1, V)
    cases = {0.3: {1}, 0.6: {1, 3}, 0.8: {0, 1, 3} | {4}, 0.9: {0, 1, 3, 4}, 0.97: {0, 1, 2, 3, 4}}
    for top_p, keep in cases.items():
        out = filter_logits(logits, 1.0, 0, top_p)[0]
        kept = {i for i in range(5) if math.isfinite(out[i])}
        if top_p == 0.8:  # 0.5 + 0.25 + 0.1 = 0.85 >= 0.8: one of the two 0.1s, either is minimal
            assert len(kept) == 3 and {1, 3} < kept
            continue
        assert kept == keep, top_p
        assert torch.allclose(out[list(keep)], logits[0, list(keep)])


@settings(deadline=None, max_examples=100)
@given(st.lists(st.integers(-500, 500), min_size=2, max_size=12, unique=True), st.floats(0.01, 0.99))
def test_top_p_property(values, top_p):
    """The kept set is a prefix of the sorted distribution with mass >= p; without its last member it is below p."""
    logits = torch.tensor(values)[None] / 100  # (1, V), distinct even in float32
    probs = torch.softmax(logits, -1)[0]
    out = filter_logits(logits, 1.0, 0, top_p)[0]
    kept = torch.isfinite(out)
    order = probs.argsort(descending=True)
    m = int(kept.sum())
    assert kept[order[:m]].all()
    mass = probs[order[:m]].sum().item()
    assert mass >= top_p - 1e-5
    assert probs[order[: m - 1]].sum().item() < top_p + 1e-5


@settings(deadline=None, max_examples=100)
@given(st.lists(st.integers(-500, 500), min_size=1, max_size=12, unique=True), st.integers(1, 12),
       st.floats(0.1, 5))
def test_top_k_keeps_exactly_k(values, k, temp):
    """top_k must keep exactly the k largest logits (all if k >= V), each divided by the temperature."""
    logits = torch.tensor(values)[None] / 100  # (1, V), distinct even in float32
    out = filter_logits(logits, temp, k, 1.0)[0]
    kept = torch.isfinite(out)
    assert int(kept.sum()) == min(k, len(values))
    largest = torch.topk(logits[0], min(k, len(values))).indices
    assert set(torch.nonzero(kept).flatten().tolist()) == set(largest.tolist())
    assert torch.allclose(out[kept], logits[0][kept] / temp)


# -- errors and several samples ---------------------------------------------------------
def test_unknown_prime_characters_read_as_the_symbol(trained):
    """A prime with characters the model never saw must warm the state exactly as the same prime with
    U+FFFD in their place would, and the continuation never contains the symbol."""
    model, vocab = trained
    greedy = dict(length=30, temperature=0.0)
    got = sample_texts(model, vocab, SampleConfig(prime="Hi ZQ!", **greedy))[0]
    want = sample_texts(model, vocab, SampleConfig(prime=f"Hi {UNKNOWN}{UNKNOWN}!", **greedy))[0]
    assert vocab.unknown("Hi ZQ!") == ["Z", "Q"] and got[6:] == want[6:] and UNKNOWN not in got[6:]


def test_a_vocab_without_the_symbol_refuses_unknown_prime_characters_before_output(trained):
    """A hand-built vocabulary without the symbol must raise at once, naming the unseen characters,
    before any text is generated."""
    model, vocab = trained
    bare = Vocab(tuple(c for c in vocab.chars if c != UNKNOWN))
    cfg = SampleConfig(length=10, prime="Hi ZQ!")
    with pytest.raises(ChargenError) as err:
        generate_ids(model, bare, cfg)  # not iterated: the check must not wait for the first character
    assert "'Z'" in err.value.message and "'Q'" in err.value.message and "'H'" not in err.value.message
    with pytest.raises(ChargenError):
        next(generate(model, bare, cfg))


@pytest.mark.parametrize("file", ["v1-gru-best.pt", "v1-lstm-last.pt"])
def test_a_format_1_model_draws_the_same_text_after_gaining_the_symbol(file):
    """Guards against the migration changing what a seed gives (the README's quick-start sample among
    them): a format 1 model, loaded with U+FFFD added, draws what it drew with its own 61 characters."""
    from pathlib import Path

    from chargen import CharRNN, ModelConfig, read_checkpoint

    path = Path(__file__).resolve().parent.parent / "fixtures" / file
    raw = read_checkpoint(path)
    old = CharRNN(ModelConfig(**raw["model_config"]))
    old.load_state_dict(raw["model"])
    old_vocab = Vocab(tuple(raw["vocab"]))
    model, vocab, _ = load_model(path)
    assert len(vocab) == len(old_vocab) + 1 and vocab.unk_id == len(old_vocab)
    for cfg in (SampleConfig(length=60, temperature=1.0, seed=7, prime="KING"),
                SampleConfig(length=40, temperature=0.8, top_k=5, seed=2, num_samples=3)):
        assert sample_texts(model, vocab, cfg) == sample_texts(old.eval(), old_vocab, cfg)


def test_sample_texts_shapes(trained):
    """num_samples texts, each the prime plus exactly `length` characters; the samples differ from each other."""
    model, vocab = trained
    texts = sample_texts(model, vocab, SampleConfig(length=25, temperature=2.0, prime="Like ", seed=4,
                                                    num_samples=3))
    assert len(texts) == 3
    assert all(t.startswith("Like ") and len(t) == 30 for t in texts)
    assert len(set(texts)) == 3
    assert sample_texts(model, vocab, SampleConfig(length=0, prime="Up", seed=1)) == ["Up"]


def test_generate_refuses_several_samples(trained):
    """The streaming generator yields one text; asking it for several must be an error, not a silent first one."""
    model, vocab = trained
    with pytest.raises(ChargenError):
        next(generate(model, vocab, SampleConfig(length=5, num_samples=2)))


@pytest.mark.parametrize("field, value", [
    ("length", -1), ("length", 2.5), ("temperature", -0.1), ("temperature", math.nan), ("temperature", math.inf),
    ("temperature", 1000.0), ("top_k", -1), ("top_p", 0.0), ("top_p", 1.5), ("top_p", math.nan),
    ("num_samples", 0), ("seed", -1), ("compile", "yes"), ("compile", 1),
])
def test_sample_config_rejects_bad_values(field, value):
    """Out-of-range sampling settings must raise ChargenError with a hint, not produce garbage or a torch error."""
    with pytest.raises(ChargenError) as err:
        SampleConfig(**{field: value})
    assert err.value.hint
    assert field.replace("_", "-").split("-")[0] in err.value.message


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_trained_model_samples_on_cpu(tmp_path, corpus_file, make_model_config, make_train_config):
    """A model trained on a GPU must load onto the CPU and sample there exactly like a naive CPU decoder."""
    train(corpus_file, make_model_config(), make_train_config(device="cuda", max_steps=20),
          out=tmp_path / "run", progress=False)
    model, vocab, _ = load_model(tmp_path / "run" / "best.pt")
    assert all(p.device.type == "cpu" for p in model.parameters())
    cfg = SampleConfig(length=40, temperature=0, prime="How ")
    on_cpu = sample_texts(model, vocab, cfg, device="cpu")
    assert on_cpu == [reference_greedy(model, vocab, "How ", 40)]
    on_gpu = sample_texts(model, vocab, cfg, device="cuda")[0]  # argmax near-ties may differ across devices
    assert on_gpu.startswith("How ") and len(on_gpu) == len(on_cpu[0])
