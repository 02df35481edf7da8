"""The GPU paths: training every cell on CUDA, ids resident on the device, sampling rules on the
device, and two-GPU DDP with nccl. Marked gpu and skipped without CUDA (CI has none)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from chargen import (
    SampleConfig,
    StreamBatcher,
    evaluate_carried,
    load_model,
    sample_texts,
    train,
)
from chargen.modelfile.checkpoint import read_checkpoint

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_every_cell_trains_on_cuda_and_evaluates_alike_on_cpu(tmp_path, corpus_file, make_model_config,
                                                               make_train_config, cell):
    """A CUDA run must learn (loss falls), write a checkpoint that loads on the CPU, and score the
    validation text there as it did on the GPU (to float tolerance)."""
    result = train(corpus_file, make_model_config(cell=cell), make_train_config(device="cuda", max_steps=40),
                   out=tmp_path / cell, progress=False)
    assert result.device.startswith("cuda") and result.steps == 40
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0]
    model, vocab, ckpt = load_model(tmp_path / cell / "best.pt")
    ids = vocab.encode(corpus_file.read_text(encoding="utf-8"))[-300:]
    cpu = evaluate_carried(model, ids, torch.device("cpu")).loss
    gpu = evaluate_carried(model.to("cuda"), ids, torch.device("cuda")).loss
    assert gpu == pytest.approx(cpu, abs=2e-3)


def test_batcher_keeps_small_corpora_resident_on_the_gpu():
    """A memory-mapped corpus small enough is copied to the GPU once; windows then come from there,
    equal to the CPU path's."""
    ids = np.arange(3 * 41, dtype=np.uint16) % 50
    gpu = StreamBatcher(ids, 3, 8, device="cuda")
    cpu = StreamBatcher(ids, 3, 8, device="cpu")
    assert isinstance(gpu.streams, torch.Tensor) and gpu.streams.device.type == "cuda"
    for w in range(len(cpu)):
        for a, b in zip(gpu.window(w), cpu.window(w)):
            assert a.device.type == "cuda" and torch.equal(a.cpu(), b)


def test_sampling_rules_hold_on_the_gpu(trained_run):
    """Same seed, same device and path: same text. Temperature 0: the same text for any seed.
    256 streams at once: 256 texts of the asked length."""
    model, vocab, _ = load_model(trained_run.best)
    cfg = SampleConfig(length=60, temperature=0.9, seed=5, prime="How ")
    assert sample_texts(model, vocab, cfg, "cuda") == sample_texts(model, vocab, cfg, "cuda")
    greedy = [sample_texts(model, vocab, SampleConfig(length=60, temperature=0, seed=s), "cuda") for s in (1, 2)]
    assert greedy[0] == greedy[1]
    many = sample_texts(model, vocab, SampleConfig(length=30, temperature=1.0, seed=3, num_samples=256), "cuda")
    assert len(many) == 256 and all(len(t) == 30 for t in many) and len(set(many)) > 1


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_with_nccl_train_like_one(tmp_path, corpus_file):
    """torchrun over two GPUs (nccl) must train to a checkpoint that loads on the CPU, with the
    global batch recorded and one writer."""
    args = ["--cell", "lstm", "--hidden-size", "16", "--embedding-dim", "8", "--batch-size", "8", "--seq-len", "16",
            "--max-steps", "20", "--max-time", "0", "--eval-every", "10", "--save-every", "10", "--device", "cuda",
            "--out", str(tmp_path / "ddp"), "--json"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "chargen", "train", str(corpus_file), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert len([line for line in done.stdout.splitlines() if line.startswith("{")]) == 1
    ckpt = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ckpt["step"] == 20 and ckpt["train_config"]["batch_size"] == 8
    model, vocab, _ = load_model(tmp_path / "ddp" / "best.pt")
    assert len(sample_texts(model, vocab, SampleConfig(length=20, seed=1))[0]) == 20


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_fast_step_on_cuda_equals_the_model(cell, monkeypatch):
    """On CUDA FastStep computes the model's function, up to its TF32 products (a misplaced bias
    would be off by about 0.1 here)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # the reference in plain float32
    from chargen import CharRNN, ModelConfig
    from chargen.sample.step import FastStep

    torch.manual_seed(0)
    m = CharRNN(ModelConfig(vocab_size=30, cell=cell, num_layers=3, hidden_size=64, embedding_dim=16)).cuda().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
        x = torch.randint(30, (4, 9), device="cuda")
        ref, _ = m(x)
        step = FastStep(m)
        _, hidden = m(x[:, :1])
        state, outs = step.from_hidden(hidden), [ref[:, 0]]
        for t in range(1, 9):
            logits, state = step(x[:, t], state)
            outs.append(logits)
    torch.testing.assert_close(torch.stack(outs, 1), ref, atol=5e-3, rtol=5e-3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("streams, temp, top_k", [(1, 0.0, 0), (1, 0.8, 0), (256, 1.0, 0), (4, 1.0, 5)])
def test_cuda_graph_chunks_draw_what_single_steps_draw(cell, streams, temp, top_k):
    """The captured graph replays K draw-and-feed rounds: same seed, same ids as one step at a
    time on the same GPU, greedy, sampled, 256 streams and top-k; and the graph was captured."""
    from chargen import CharRNN, ModelConfig, Vocab
    from chargen.sample.sampler import Sampler

    vocab = Vocab(tuple(chr(c) for c in range(40, 105)))
    torch.manual_seed(1)
    m = CharRNN(ModelConfig(vocab_size=65, cell=cell, num_layers=3, hidden_size=128))
    with torch.no_grad():
        m.head.weight.mul_(20)  # confident logits: rounding never flips a draw
    cfg = SampleConfig(temperature=temp, top_k=top_k, seed=9, prime="ABC", num_samples=streams)
    runs = []
    for ahead in (True, False):
        sampler = Sampler(m, vocab, cfg, "cuda")
        sampler.feed(cfg.prime)
        runs.append(torch.stack(list(sampler.draw(150, ahead=ahead))))  # 3 chunks of 64, the last cut to 22
        if ahead:
            assert sampler.chunks[64].mode == "graph" and sampler.chunks[64].graph is not None
    agree = (runs[0] == runs[1]).float().mean().item()
    assert runs[0].shape == (150, streams) and agree == 1.0


def test_stacked_lstm_on_cuda_per_layer_is_the_stacked_function(monkeypatch):
    """On CUDA a stacked LSTM trains as one cuDNN call per layer (layers.PerLayerLSTM): the stacked
    nn.LSTM's function and gradients, also after a move to the CPU and back."""
    from chargen import CharRNN, ModelConfig

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, cell="lstm", num_layers=3, hidden_size=128, embedding_dim=128, dropout=0.0)
    m = CharRNN(cfg, "per_layer").cpu().cuda()
    plain = CharRNN(cfg).cuda()
    plain.load_state_dict(m.state_dict())
    x = torch.randint(30, (8, 40), device="cuda")
    results = []
    for model in (m, plain):
        out, (h, c) = model(x)
        out.square().mean().backward()
        results.append((out, h, c, [p.grad for p in model.rnn.parameters()]))
    (out, h, c, grads), (ref, rh, rc, ref_grads) = results
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(h, rh, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(c, rc, atol=1e-5, rtol=1e-4)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_trainer_reads_figures_a_step_late_and_skips_bad_steps_on_the_device(tmp_path, corpus_file,
                                                                                  make_model_config,
                                                                                  make_train_config, precision):
    """On CUDA the host reads each step's figures one step late, through pinned memory: the first
    call returns NaNs, later ones finite figures, settle() the last step's. A NaN gradient leaves
    the weights alone (with fp16, the scaler skips it) before anything is read."""
    import math

    from chargen import ModelConfig
    from chargen.data.corpus import load_corpus
    from chargen.training.trainer import Trainer

    cfg = make_train_config(device="cuda", max_steps=20, precision=precision)
    corpus = load_corpus(corpus_file, cfg.val_frac)
    mc = ModelConfig(**{**make_model_config().to_dict(), "vocab_size": len(corpus.vocab)})
    (tmp_path / "run").mkdir()
    trainer = Trainer(corpus, mc, cfg, tmp_path / "run", torch.device("cuda"))
    assert trainer.lag == 1
    first = trainer.train_step()
    assert all(math.isnan(x) for x in first)
    figures = [trainer.train_step() for _ in range(3)]
    assert all(math.isfinite(loss) and math.isfinite(norm) for loss, norm in figures)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    handle = trainer.model.head.weight.register_hook(lambda g: g * math.nan)
    trainer.train_step()
    handle.remove()
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    loss, norm = trainer.settle()
    assert math.isfinite(loss) and math.isnan(norm) and not trainer.unread
    assert trainer.bad_steps == (0 if precision == "fp16" else 1)
