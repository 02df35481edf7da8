"""Device recipes (recipes.py), fp16 precision and loss scaling.

Everything here runs on the CPU: the GPU recipe is a table of settings, and the loss scaler
has a CPU version.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from chargen import ChargenError, ModelConfig, TrainConfig
from chargen.device import autocast_dtype
from chargen.training.recipes import GPU, default_configs

from test_train import make_trainer

CUDA, CPU = torch.device("cuda"), torch.device("cpu")  # a device object needs no GPU


def test_cpu_recipe_is_the_dataclass_defaults():
    assert default_configs(CPU) == (ModelConfig(), TrainConfig())


def test_gpu_recipe_fills_what_is_not_given():
    model, train = default_configs(CUDA, hidden_size=64, seed=7, lr=None)
    assert (model.cell, model.num_layers, model.embedding_dim, model.dropout) == ("lstm", 3, 256, 0.5)
    assert model.hidden_size == 64 and train.seed == 7  # given values win
    assert (train.batch_size, train.seq_len, train.lr, train.weight_decay) == (128, 128, GPU["lr"], 0.1)
    assert train.max_time == TrainConfig().max_time  # not in the recipe: the dataclass default


def test_cli_train_takes_the_recipe_of_the_resolved_device(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from chargen.cli import app
    calls = []
    monkeypatch.setattr("chargen.cli.train.resolve_device", lambda spec: CUDA)
    monkeypatch.setattr("chargen.cli.train.run_training", lambda corpus, model_config, config, **kw: calls.append(
        (model_config, config)) or (_ for _ in ()).throw(ChargenError("stop here")))
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc\n" * 50)
    result = CliRunner().invoke(app, ["train", str(corpus), "--device", "cuda", "--seq-len", "64"])
    assert result.exit_code == 1 and "stop here" in result.stderr
    model, train = calls[0]
    assert (model.cell, model.hidden_size, train.batch_size, train.seq_len) == ("lstm", 1024, 128, 64)


def test_precision_choices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype(CUDA, "auto") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert autocast_dtype(CUDA, "auto") == torch.float16
    with pytest.raises(ChargenError, match="bfloat16"):
        autocast_dtype(CUDA, "bf16")
    assert autocast_dtype(CUDA, "fp16") == torch.float16
    assert autocast_dtype(CPU, "fp32") is None
    with pytest.raises(ChargenError, match="fp16"):
        autocast_dtype(CPU, "fp16")
    with pytest.raises(ChargenError):
        TrainConfig(precision="fp8")


@pytest.mark.parametrize("scaled", [True, False])
def test_gradient_overflow_under_loss_scaling_skips_the_update_not_the_run(tmp_path, corpus_file, make_model_config,
                                                                          make_train_config, scaled):
    """An inf in the gradients (what fp16 overflow gives) leaves the weights alone either way. Under
    loss scaling it is the scaler's business: the scale halves, the state and the learning rate
    stay, and training goes on. Without a scaler it is a bad step: the state restarts."""
    trainer = make_trainer(tmp_path, corpus_file, make_model_config(), make_train_config(max_steps=40))
    if scaled:
        trainer.fp16, trainer.scaler = True, torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)  # as fp16 sets up
    head = trainer.model.head.weight
    handle = head.register_hook(lambda g: g * math.inf)  # every element inf or nan, as after an overflow
    before = [p.detach().clone() for p in trainer.model.parameters()]
    loss, norm = trainer.train_step()
    handle.remove()
    assert math.isfinite(loss) and not math.isfinite(norm)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    if scaled:
        assert trainer.bad_steps == 0 and trainer.state.hidden is not None
        assert trainer.scaler.get_scale() == 2.0 ** 15
    else:
        assert trainer.bad_steps == 1 and all(not h.any() for h in trainer.state.hidden)  # restarted: zeros
    losses = [trainer.train_step()[0] for _ in range(39)]
    assert sum(losses[-5:]) / 5 < loss - 0.3
    assert all(math.isfinite(p.sum().item()) for p in trainer.model.parameters())


def test_cpu_dropout_follows_the_passes_the_budget_allows():
    """No dropout when the budget allows few passes over the corpus (every update counts), the
    dataclass's 0.1 when it allows many; a given dropout and the GPU recipe's always win."""
    from chargen.training.recipes import CPU_CHARS_PER_S, SHORT_PASSES, planned_passes

    mb = 1_115_394  # tinyshakespeare
    assert planned_passes(TrainConfig(max_time=140), mb) == pytest.approx(140 * CPU_CHARS_PER_S / (0.9 * mb))
    assert planned_passes(TrainConfig(max_time=140), mb) <= SHORT_PASSES < planned_passes(TrainConfig(max_time=600), mb)
    assert default_configs(CPU, corpus_chars=mb, max_time=140)[0].dropout == 0.0
    assert default_configs(CPU, corpus_chars=mb, max_time=600)[0].dropout == ModelConfig().dropout == 0.1
    assert default_configs(CPU, corpus_chars=mb)[0].dropout == 0.1  # the default budget, 600 s
    assert default_configs(CPU, corpus_chars=5 * mb)[0].dropout == 0.0  # 600 s on a 5 MB corpus: few passes
    # A step limit counts when it allows fewer characters than the time limit: 100 x 32 x 64 = 204,800.
    steps = TrainConfig(max_time=600, max_steps=100)
    assert planned_passes(steps, mb) == pytest.approx(100 * 32 * 64 / (0.9 * mb))
    assert default_configs(CPU, corpus_chars=mb, max_time=600, max_steps=100)[0].dropout == 0.0
    assert default_configs(CPU, corpus_chars=mb, max_time=140, dropout=0.3)[0].dropout == 0.3  # given wins
    assert default_configs(CUDA, corpus_chars=mb, max_time=10)[0].dropout == 0.5  # the GPU recipe's
    assert default_configs(CPU)[0].dropout == 0.1  # corpus size unknown: the dataclass default


def test_cli_train_sets_the_cpu_dropout_from_the_corpus_size(monkeypatch, tmp_path):
    """`chargen train` passes the corpus's size: a short budget on it gets no dropout, a long one 0.1."""
    from typer.testing import CliRunner

    from chargen.cli import app
    calls = []
    monkeypatch.setattr("chargen.cli.train.run_training", lambda corpus, model_config, config, **kw: calls.append(
        (model_config, config)) or (_ for _ in ()).throw(ChargenError("stop here")))
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc\n" * 25_000)  # 100,000 bytes: 30,000 chars/s x 20 s = 6.7 passes over 90,000
    for seconds, want in (("18", 0.0), ("20", 0.1)):
        result = CliRunner().invoke(app, ["train", str(corpus), "--device", "cpu", "--max-time", seconds])
        assert result.exit_code == 1 and "stop here" in result.stderr
        assert calls[-1][0].dropout == want
    CliRunner().invoke(app, ["train", str(corpus), "--device", "cpu", "--max-time", "18", "--dropout", "0.2"])
    assert calls[-1][0].dropout == 0.2
