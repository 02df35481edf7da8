"""The GPU paths: training every cell on CUDA, ids resident on the device, sampling rules on the
device, and two-GPU DDP with nccl. Marked gpu and skipped without CUDA (CI has none)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from chargen import SampleConfig, StreamBatcher, evaluate_carried, load_model, sample_texts, train
from chargen.checkpoint import read_checkpoint

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
