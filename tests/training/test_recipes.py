"""Device recipes (recipes.py), fp16 precision and loss scaling.

Everything here runs on the CPU: the GPU recipe is a table of settings, and the loss scaler
has a CPU version.
"""
from __future__ import annotations

import math

import pytest
import torch
from test_train import make_trainer

from chargen import ChargenError, ModelConfig, TrainConfig, train
from chargen.device import autocast_dtype
from chargen.training.distributed import World
from chargen.training.recipes import EVAL_STEPS, GPU, default_configs, eval_cadence

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
    """No dropout when the budget allows few passes over the training text (every update counts), 0.1
    when it allows many. A step limit counts its characters whatever the machine; a time limit alone
    needs the measured speed."""
    from chargen.training.recipes import SHORT_PASSES, choose_dropout, planned_passes

    chars = 1_024_000  # 500 steps of 32 x 64 characters make one pass
    steps = TrainConfig(max_time=600, max_steps=3_000)  # 6.0 passes
    assert planned_passes(steps, chars) == 6.0
    assert planned_passes(steps, chars, chars_per_s=1e9) == 6.0  # the time limit and the speed are no matter
    assert choose_dropout(steps, chars).dropout == 0.0
    assert choose_dropout(TrainConfig(max_steps=3_001), chars).dropout == 0.1  # just past 6 passes
    timed = TrainConfig(max_time=600)
    assert planned_passes(timed, chars, chars_per_s=30_000) == pytest.approx(600 * 30_000 / chars)
    assert choose_dropout(timed, chars, chars_per_s=10_240).dropout == 0.0  # 6.0 passes on a slow machine
    assert choose_dropout(timed, chars, chars_per_s=10_300).dropout == 0.1  # 6.04 on a faster one
    with pytest.raises(ValueError):
        planned_passes(timed, chars)
    choice = choose_dropout(timed, 4_516_000, chars_per_s=36_000.4)
    assert choice.passes == pytest.approx(600 * 36_000.4 / 4_516_000) and choice.passes <= SHORT_PASSES
    assert choice.reason() == ("4.8 planned passes (600 s at 36,000 chars/s measured, over 4,516,000 training "
                               "characters): dropout 0 up to 6 passes, 0.1 beyond")
    assert choose_dropout(TrainConfig(max_steps=3_100), chars).reason().startswith(
        "6.2 planned passes (3,100 steps, over 1,024,000 training characters)")


def test_dropout_rule_applies_unless_given_or_set_by_the_recipe():
    from chargen.training.recipes import dropout_rule_applies

    assert dropout_rule_applies(CPU, None) and dropout_rule_applies(torch.device("mps"), None)
    assert not dropout_rule_applies(CPU, 0.1)  # given, even if equal to the default
    assert not dropout_rule_applies(CUDA, None)  # the GPU recipe's 0.5
    assert default_configs(CPU)[0].dropout == ModelConfig().dropout


def test_train_applies_the_rule_on_the_corpus_characters(tmp_path, make_model_config, make_train_config):
    """chargen.train(auto_dropout=True) must count the prepared corpus's characters, not the file's bytes:
    on a text of two-byte characters a step budget of just over 6 passes gets 0.1, just under 6 gets 0."""
    from chargen import load_corpus

    corpus = tmp_path / "accents.txt"
    corpus.write_text("éàü çñö, ß! ÆØÅ\n" * 150, encoding="utf-8")  # 2,400 characters, 4,050 bytes
    train_chars = len(load_corpus(corpus, 0.1).train_ids)
    per_step = 4 * 16
    under, over = (6 * train_chars) // per_step, (6 * train_chars) // per_step + 1
    assert over * per_step > 6 * train_chars >= under * per_step and under * per_step * 1.5 > 6 * train_chars
    mc = make_model_config(dropout=0.3)  # replaced by the rule
    results = [train(corpus, mc, make_train_config(max_steps=n, eval_every=1000), out=tmp_path / str(n),
                     auto_dropout=True, progress=False) for n in (under, over)]
    assert [r.model_config.dropout for r in results] == [0.0, 0.1]
    assert [r.dropout_choice.train_chars for r in results] == [train_chars] * 2
    assert results[0].dropout_choice.passes == pytest.approx(under * per_step / train_chars)
    kept = train(corpus, mc, make_train_config(max_steps=2), out=tmp_path / "kept", progress=False)
    assert kept.model_config.dropout == 0.3 and kept.dropout_choice is None


def test_eval_cadence_is_about_one_pass_within_bounds():
    """eval_every 0 becomes the steps of one pass (to the nearest 100), never under 100 nor over 1,000:
    84,376 characters at 32 x 64 are 41 steps a pass, tinyshakespeare's 1,003,854 are 490."""
    cfg = TrainConfig()
    assert cfg.eval_every == 0 and EVAL_STEPS == (100, 1000)
    assert eval_cadence(cfg, 84_376) == 100
    assert eval_cadence(cfg, 1_003_854) == 500
    assert eval_cadence(cfg, 4_557_281) == 1000
    assert eval_cadence(cfg, 1_003_854, ranks=2) == 200  # 245 steps a pass when two ranks share it
    assert eval_cadence(TrainConfig(batch_size=8, seq_len=32), 1_003_854) == 1000


def test_train_resolves_the_cadence_and_keeps_a_given_one(tmp_path, corpus_file, make_model_config,
                                                          make_train_config):
    """A run left at eval_every 0 evaluates every 100 steps on a small text, and its checkpoint and
    config.toml hold the 100 (so a resume or `--config` repeats it); a given value is kept."""
    from chargen.modelfile import Checkpoint

    auto = train(corpus_file, make_model_config(), make_train_config(max_steps=250, eval_every=0),
                 out=tmp_path / "auto", progress=False)
    assert [h["step"] for h in auto.history] == [100, 200, 250]
    assert Checkpoint.read(tmp_path / "auto" / "last.pt").train_config.eval_every == 100
    assert "eval_every = 100" in (tmp_path / "auto" / "config.toml").read_text()
    given = train(corpus_file, make_model_config(), make_train_config(max_steps=25, eval_every=10),
                  out=tmp_path / "given", progress=False)
    assert [h["step"] for h in given.history] == [10, 20, 25]


def test_time_budget_measures_the_speed_and_leaves_the_run_alone(tmp_path, corpus_file, make_model_config,
                                                                 make_train_config):
    """With a time limit alone the rule times a few throwaway steps: the verdict follows from the speed it
    measured, and the run then starts from its seed as if nothing had run before it."""
    from chargen import load_corpus
    from chargen.training.loop import _choose_dropout

    corpus = load_corpus(corpus_file, 0.1)
    mc = ModelConfig(**{**make_model_config(dropout=0.3).to_dict(), "vocab_size": len(corpus.vocab)})
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    reference = make_trainer(tmp_path / "a", corpus_file, mc, make_train_config())
    losses = [reference.train_step()[0] for _ in range(3)]  # dropout 0.3: the masks draw on the seeded RNG
    for seconds, want in ((1e-3, 0.0), (1e6, 0.1)):
        cfg = make_train_config(max_steps=0, max_time=seconds)
        choice = _choose_dropout(corpus, mc, cfg, tmp_path / "c", CPU, World())
        assert choice.chars_per_s > 1_000 and choice.dropout == want
        assert choice.passes == pytest.approx(seconds * choice.chars_per_s / len(corpus.train_ids))
    after = make_trainer(tmp_path / "b", corpus_file, mc, make_train_config())
    assert [after.train_step()[0] for _ in range(3)] == losses
    assert list((tmp_path / "c").iterdir()) == []  # the throwaway steps write nothing


def test_cli_train_shows_the_dropout_rule(tmp_path, corpus_file):
    """`chargen train` must name the dropout and why in its summary; the API's train() chooses the same."""
    import json

    from typer.testing import CliRunner

    from chargen import load_corpus
    from chargen.cli import app
    tiny = ["--cell", "gru", "--layers", "1", "--hidden-size", "8", "--embedding-dim", "5", "--batch-size", "3",
            "--seq-len", "12", "--max-time", "0", "--eval-every", "50", "--device", "cpu", "--json"]
    train_chars = len(load_corpus(corpus_file, 0.1).train_ids)
    for steps, want in ((10, 0.0), (400, 0.1)):
        result = CliRunner().invoke(app, ["train", str(corpus_file), *tiny, "--max-steps", str(steps),
                                          "--out", str(tmp_path / str(steps))])
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["model"] == f"gru 1x8, embedding 5, dropout {want}"
        assert summary["dropout_rule"].startswith(f"{steps * 36 / train_chars:.1f} planned passes ({steps} steps, "
                                                  f"over {train_chars:,} training characters)")
    given = CliRunner().invoke(app, ["train", str(corpus_file), *tiny, "--max-steps", "10", "--dropout", "0.2",
                                     "--out", str(tmp_path / "given")])
    assert "dropout_rule" not in json.loads(given.stdout) and "dropout 0.2" in json.loads(given.stdout)["model"]


# -- Apple's MPS, checked on this CPU ---------------------------------------------------------------------
def test_auto_device_is_mps_when_there_is_mps_and_no_cuda(monkeypatch):
    """`--device auto` must pick MPS on a Mac without CUDA, CUDA before it, and give MPS the CPU recipe
    (it is not a CUDA device) with fp32: no fp16, which is for CUDA only."""
    from chargen.device import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    mps = resolve_device("auto")
    assert mps == torch.device("mps") and resolve_device("mps") == mps
    assert default_configs(mps) == (ModelConfig(), TrainConfig())
    assert autocast_dtype(mps, "auto") is None
    with pytest.raises(ChargenError, match="CUDA"):
        autocast_dtype(mps, "fp16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == CUDA


def test_training_off_cuda_calls_no_cuda_api(tmp_path, corpus_file, make_model_config, make_train_config,
                                           monkeypatch):
    """The trainer branches on the device type only: off CUDA (the CPU here, MPS on a Mac) a run, its saves,
    a resume and the dropout rule's timing must never touch a CUDA-only API."""
    def cuda_only(*args, **kwargs):
        raise AssertionError("a CUDA-only API was called off CUDA")

    for name in ("Event", "current_stream", "get_rng_state", "set_rng_state", "synchronize", "is_bf16_supported"):
        monkeypatch.setattr(torch.cuda, name, cuda_only)
    cfg = make_train_config(max_steps=0, max_time=0.2, eval_every=3, save_every=3)
    first = train(corpus_file, make_model_config(), cfg, out=tmp_path / "run", auto_dropout=True, progress=False)
    assert first.stop_reason == "max_time" and first.dropout_choice.chars_per_s > 0
    again = train(corpus_file, make_model_config(), cfg, out=tmp_path / "run", resume=True, more_time=0.1,
                  progress=False)
    assert again.steps > first.steps
