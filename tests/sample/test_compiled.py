"""`--compile`: a CPU chunk's rounds compiled by torch.compile (rounds.py) must draw what the
uncompiled paths draw, and a failure to compile must be a one-line error.

Each distinct shape compiles once per process (several seconds on 2 cores, more the more rounds
a chunk unrolls), so chunks here are 8 rounds, not the CPU's 32, and the tests share shapes: the
library tests use the trained run's model in one stream, as the CLI test does.
"""
from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

import chargen.sample.rounds as rounds_mod
import chargen.sample.sampler as sampler_mod
from chargen import CharRNN, ModelConfig, SampleConfig, Vocab, load_model
from chargen.cli import app
from chargen.data.vocab import UNKNOWN
from chargen.sample.sampler import Sampler


def draws(m: CharRNN, vocab: Vocab, cfg: SampleConfig, n: int, ahead: bool) -> tuple[torch.Tensor, Sampler]:
    sampler = Sampler(m, vocab, cfg)
    sampler.feed(cfg.prime)
    return torch.stack(list(sampler.draw(n, ahead=ahead))), sampler  # (n, N)


@pytest.fixture(autouse=True)
def short_chunks(monkeypatch) -> None:
    monkeypatch.setattr(sampler_mod, "chunk_size", lambda device, streams, vocab_size: 8)


@pytest.fixture
def counted(monkeypatch) -> list:
    """Records every call of the compiled rounds, so a test can tell the compiled program ran."""
    calls, real = [], rounds_mod._compile

    def counting(rounds):
        program = real(rounds)

        def run():
            calls.append(1)
            return program()
        return run

    monkeypatch.setattr(rounds_mod, "_compile", counting)
    return calls


@pytest.mark.parametrize("temp, top_k", [(0.0, 0), (0.8, 0), (0.8, 3)])
def test_compiled_chunks_draw_what_single_steps_draw(trained_run, temp, top_k, counted):
    """Greedy, sampled and top-k (compiled with its filter): two chunks and a remainder of compiled
    rounds give the step-by-step path's ids from the same seed."""
    m, vocab, _ = load_model(trained_run.best)
    cfg = SampleConfig(temperature=temp, top_k=top_k, seed=5, prime="The ", compile=True)
    got, sampler = draws(m, vocab, cfg, 70, ahead=True)
    want, _ = draws(m, vocab, SampleConfig(temperature=temp, top_k=top_k, seed=5, prime="The "), 70, ahead=False)
    assert sampler.chunks[8].mode == "compiled"
    assert len(counted) == 9  # 8 x 8 + 6 (of 8): the compiled program drew them all
    assert got.shape == (70, 1) and torch.equal(got, want)
    assert len(set(got.flatten().tolist())) > 3  # a constant output would agree trivially
    if top_k:  # only the 3 likeliest are ever drawn: the filter ran inside the compiled rounds
        with torch.no_grad():
            logits = m(vocab.encode("The ")[None])[0][0, -1]  # (V,)
        assert int(got[0, 0]) in logits.topk(3).indices.tolist()


def test_compiled_gru_in_three_streams_never_draws_the_unknown_symbol(counted):
    """A GRU in 3 streams over a vocabulary with the unknown symbol (made the likeliest, so masking
    matters): the compiled rounds draw the step path's ids and never the masked symbol."""
    vocab = Vocab(tuple(sorted("abcdefg \n" + UNKNOWN)), UNKNOWN)
    torch.manual_seed(3)
    m = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=2, hidden_size=6, embedding_dim=5))
    with torch.no_grad():
        for p in m.parameters():  # non-zero biases everywhere, so a misplaced bias shows
            p.add_(0.1 * torch.randn_like(p))
        m.head.weight.mul_(4)
        m.head.bias[vocab.unk_id] = 5.0
    m.eval()
    cfg = SampleConfig(temperature=0.7, seed=21, prime="ab", num_samples=3)
    got, sampler = draws(m, vocab, SampleConfig(**{**cfg.__dict__, "compile": True}), 40, ahead=True)
    want, _ = draws(m, vocab, cfg, 40, ahead=False)
    assert sampler.chunks[8].mode == "compiled" and counted
    assert got.shape == (40, 3) and torch.equal(got, want)
    assert not (got == vocab.unk_id).any()
    assert len(set(got.flatten().tolist())) > 1


def test_cli_compile_prints_the_same_text(trained_run):
    """`chargen sample --compile` writes what `chargen sample` writes for the same seed, saying on
stderr (unless -q) that it compiles."""
    args = ["sample", str(trained_run.best), "--seed", "1", "--length", "50", "--temp", "0.8"]
    plain = CliRunner().invoke(app, args)
    compiled = CliRunner().invoke(app, [*args, "--compile"])
    assert plain.exit_code == 0 and compiled.exit_code == 0, compiled.stderr
    assert compiled.stdout == plain.stdout and len(plain.stdout) == 51
    assert compiled.stderr.startswith("compiling the sampling loop") and len(compiled.stderr.splitlines()) == 1
    quiet = CliRunner().invoke(app, [*args, "--compile", "-q"])
    assert quiet.stdout == plain.stdout and quiet.stderr == ""


def test_cli_compile_failure_is_one_line_with_a_hint(trained_run, monkeypatch):
    """No C++ compiler (simulated): exit 1, one line naming the failure and what to do."""
    def no_compiler(fn, **options):
        def fail(*args, **kwargs):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore detail")
        return fail

    monkeypatch.setattr(torch, "compile", no_compiler)
    result = CliRunner().invoke(app, ["sample", str(trained_run.best), "--seed", "1", "--compile", "-q"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: torch.compile could not compile the sampling loop")
    assert "No working C++ compiler found" in lines[0] and "without --compile" in lines[0]
    assert "Traceback" not in result.stderr and "more detail" not in result.stderr
