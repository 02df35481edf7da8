"""Watching a run learn (sample/preview.py, board.py, the loop's on_eval): the sample at each evaluation,
which must leave the training untouched, and the TensorBoard events, read back with TensorBoard's
own reader and checked against metrics.jsonl and the schedule."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from chargen import ChargenError, TrainConfig, load_corpus, load_model, read_checkpoint, train
from chargen.sample.preview import draw_sample
from chargen.training.board import BOARD_DIR
from chargen.config import MAX_SAMPLE_CHARS
from chargen.training.schedule import lr_at
from chargen.training.trainer import Trainer


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without(records: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in records]


# -- the setting -------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("sample_chars", -1), ("sample_chars", MAX_SAMPLE_CHARS + 1),
                                          ("sample_chars", 2.5), ("sample_chars", True), ("tensorboard", "yes"),
                                          ("tensorboard", 1)])
def test_watch_settings_reject_bad_values(field, value):
    """A negative, huge or wrongly typed sample length, or a tensorboard switch that is not a bool, must be a
    ChargenError naming the field and its flag, not a crash at the first evaluation."""
    with pytest.raises(ChargenError) as err:
        TrainConfig(**{field: value})
    assert field in err.value.message and f"--{field.replace('_', '-')}" in err.value.hint
    assert TrainConfig(sample_chars=0).sample_chars == 0 and TrainConfig(sample_chars=MAX_SAMPLE_CHARS)


# -- the sample --------------------------------------------------------------------------
def test_each_evaluation_records_a_sample_the_weights_reproduce(tmp_path, corpus_file, make_model_config,
                                                                make_train_config):
    """Guards against a sample missing from an evaluation, of another length, holding the unknown symbol, or
    drawn other than from the evaluated weights with the run's seed: every metrics line has one of exactly
    sample_chars known characters, and the checkpoints' weights draw the very same text again."""
    cfg = make_train_config(max_steps=25, eval_every=10, lr=3e-2, sample_chars=37, seed=4)
    result = train(corpus_file, make_model_config(), cfg, out=tmp_path / "run", progress=False)
    records = metrics(result.run_dir)
    assert [r["step"] for r in records] == [10, 20, 25] and records == result.history
    vocab = load_corpus(corpus_file, cfg.val_frac).vocab
    for r in records:
        assert len(r["sample"]) == 37 and set(r["sample"]) <= set(vocab.chars) - {vocab.unk}
    assert len({r["sample"] for r in records}) == 3  # the model changes between evaluations, and so does its text
    for name in ("last.pt", "best.pt"):
        model, vocab, ckpt = load_model(result.run_dir / name)
        (record,) = [r for r in records if r["step"] == ckpt.step]
        assert draw_sample(model, vocab, torch.device("cpu"), 37, 4) == record["sample"]
        assert draw_sample(model, vocab, torch.device("cpu"), 37, 5) != record["sample"]


def test_drawing_a_sample_leaves_the_trainer_as_it_was(tmp_path, corpus_file, make_model_config, make_train_config):
    """Guards against a sample that moves the run: after an evaluation the global RNG, the carried state,
    dropout's mode, the weights and their device and dtype are what they were, and the same seed gives the
    same text twice."""
    cfg = make_train_config(sample_chars=50)
    corpus = load_corpus(corpus_file, cfg.val_frac)
    (tmp_path / "run").mkdir()
    model_cfg = make_model_config(dropout=0.3, vocab_size=len(corpus.vocab))
    trainer = Trainer(corpus, model_cfg, cfg, tmp_path / "run", torch.device("cpu"))
    for _ in range(3):
        trainer.train_step()
    rng, hidden = torch.get_rng_state(), [h.clone() for h in trainer.state.hidden]
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    record = trainer.evaluate(1.0)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(trainer.state.hidden, hidden))
    assert trainer.model.training
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, weights[name]) and value.dtype == torch.float32 and value.device.type == "cpu"
    again = draw_sample(trainer.model, corpus.vocab, torch.device("cpu"), 50, cfg.seed)
    assert len(record["sample"]) == 50 and again == record["sample"] and trainer.model.training


def test_sampling_does_not_change_the_training(tmp_path, corpus_file, make_model_config, make_train_config):
    """Guards against a sample that disturbs training through the RNG (dropout's masks), the carried state
    or dropout's mode: runs with and without samples end with bit-identical weights, optimizer and RNG state
    and identical figures, and only the runs that ask for samples record them."""
    runs = {}
    for n in (0, 200):
        cfg = make_train_config(max_steps=20, eval_every=5, save_every=5, sample_chars=n)
        train(corpus_file, make_model_config(dropout=0.3), cfg, out=tmp_path / str(n), progress=False)
        runs[n] = read_checkpoint(tmp_path / str(n) / "last.pt")
    for name, value in runs[0]["model"].items():
        assert torch.equal(value, runs[200]["model"][name]), name
    for key, state in runs[0]["optimizer"]["state"].items():
        assert all(torch.equal(v, runs[200]["optimizer"]["state"][key][k]) for k, v in state.items())
    assert torch.equal(runs[0]["rng"]["cpu"], runs[200]["rng"]["cpu"])
    assert all(torch.equal(a, b) for a, b in zip(runs[0]["hidden"], runs[200]["hidden"]))
    plain, sampled = metrics(tmp_path / "0"), metrics(tmp_path / "200")
    assert all("sample" not in r for r in plain) and all(len(r["sample"]) == 200 for r in sampled)
    assert without(plain, "elapsed", "chars_per_s") == without(sampled, "elapsed", "chars_per_s", "sample")


def test_on_eval_gets_each_record_as_written(tmp_path, corpus_file, make_model_config, make_train_config):
    """Guards against a report that misses the final evaluation or differs from the log: on_eval receives
    every metrics record, in order, sample included."""
    seen = []
    result = train(corpus_file, make_model_config(), make_train_config(max_steps=25, eval_every=10, sample_chars=9),
                   out=tmp_path / "run", progress=False, on_eval=seen.append)
    assert seen == metrics(result.run_dir) and [r["step"] for r in seen] == [10, 20, 25]
    assert all(len(r["sample"]) == 9 for r in seen)


def test_the_sample_is_written_above_the_bar(tmp_path, corpus_file, make_model_config, make_train_config, capsys):
    """Guards against a sample written into the middle of the progress bar's line: with the bar on, every
    line of the sample block starts a line of stderr, and the bar is drawn again after it."""
    from chargen.progress import write_above

    cfg = make_train_config(max_steps=20, eval_every=10, sample_chars=12)
    train(corpus_file, make_model_config(), cfg, out=tmp_path / "run", progress=True,
          on_eval=lambda r: write_above(f"[sample at {r['step']}]"))
    err = capsys.readouterr().err
    for step in (10, 20):
        at = err.index(f"[sample at {step}]")
        assert err[at - 1] in "\r\n"  # the bar's line was cleared first
        assert "step" in err[at:].split("\n", 1)[1]  # and the bar comes back below
    assert capsys.readouterr().out == ""


# -- TensorBoard -------------------------------------------------------------------------
def read_events(run_dir):
    """The run's events as TensorBoard's own reader sees them: {tag: [(step, value), ...]} and the
    samples [(step, text), ...], every point kept."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tensorboard.util import tensor_util

    acc = accumulator.EventAccumulator(str(run_dir / BOARD_DIR),
                                       size_guidance={accumulator.SCALARS: 0, accumulator.TENSORS: 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    texts = []
    if "sample/text_summary" in acc.Tags()["tensors"]:
        for e in acc.Tensors("sample/text_summary"):
            shown = tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8")
            texts.append((e.step, "\n".join(line[4:] for line in shown.split("\n"))))  # the Markdown indent off
    return scalars, texts


def served_samples(run_dir) -> list[tuple[int, str]]:
    """The samples as the TensorBoard server reads them (its plugin accumulator, which unlike the classic
    reader also drops the text events that a restart orphaned)."""
    plugin = pytest.importorskip("tensorboard.backend.event_processing.plugin_event_accumulator")
    from tensorboard.util import tensor_util

    acc = plugin.EventAccumulator(str(run_dir / BOARD_DIR), size_guidance={plugin.TENSORS: 0})
    acc.Reload()
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto).item().decode("utf-8"))
            for e in acc.Tensors("sample/text_summary")]


TAGS = {"train/loss", "train/bpc", "train/grad_norm", "train/lr", "train/chars_per_s", "val/loss", "val/bpc"}


def f32(x: float) -> float:
    return float(np.float32(x))


def test_tensorboard_events_hold_the_run(tmp_path, corpus_file, make_model_config, make_train_config):
    """Guards against events that disagree with the run: every tag is there with rising steps, the
    validation figures are metrics.jsonl's, the learning rate is the schedule's at each step, the loss and
    norm at an evaluation step are that step's, and each evaluation's sample is there as text."""
    pytest.importorskip("tensorboard")
    cfg = make_train_config(max_steps=30, eval_every=10, warmup_steps=3, sample_chars=25, tensorboard=True)
    result = train(corpus_file, make_model_config(), cfg, out=tmp_path / "run", progress=False)
    scalars, texts = read_events(result.run_dir)
    assert set(scalars) == TAGS
    for points in scalars.values():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)) and steps
    records = {r["step"]: r for r in metrics(result.run_dir)}
    assert [s for s, _ in scalars["val/loss"]] == [10, 20, 30]
    for step, value in scalars["val/loss"]:
        assert value == f32(records[step]["val_loss"])
    for step, value in scalars["val/bpc"]:
        assert value == f32(records[step]["val_bpc"])
    assert [s for s, _ in scalars["train/lr"]] == [10, 20, 30]
    for step, value in scalars["train/lr"]:  # step n (1-based, as metrics.jsonl counts) ran at lr_at(n - 1)
        assert value == f32(lr_at(cfg, step - 1, 0.0))
    for step, value in scalars["train/loss"]:  # on a CPU the figures are read at once: this step's own
        assert value == f32(records[step]["train_loss"])
        assert dict(scalars["train/bpc"])[step] == pytest.approx(value / math.log(2), rel=1e-6)
        assert dict(scalars["train/grad_norm"])[step] == f32(records[step]["grad_norm"])
    assert all(v > 0 for _, v in scalars["train/chars_per_s"])
    assert texts == [(step, r["sample"]) for step, r in records.items()]


def test_a_resumed_run_continues_its_events(interrupt_at, tmp_path, corpus_file, make_model_config,
                                            make_train_config, monkeypatch):
    """Guards against a resume that starts the steps over, repeats them, or writes elsewhere: an interrupted
    and resumed run, and one resumed again from an older last.pt (a crash after its events but before its
    save), read as the uninterrupted run does, each step once, in the same folder."""
    pytest.importorskip("tensorboard")
    mc = make_model_config()
    cfg = make_train_config(max_steps=30, eval_every=10, save_every=10, sample_chars=15, tensorboard=True)
    train(corpus_file, mc, cfg, out=tmp_path / "whole", progress=False)
    with monkeypatch.context() as m:
        interrupt_at(m, 15)
        assert train(corpus_file, mc, cfg, out=tmp_path / "split", progress=False).steps == 15
    shutil.copy(tmp_path / "split" / "last.pt", tmp_path / "at15.pt")
    train(corpus_file, mc, cfg, out=tmp_path / "split", resume=True, progress=False)
    shutil.copy(tmp_path / "at15.pt", tmp_path / "split" / "last.pt")  # steps 16-30 logged, but not saved
    assert train(corpus_file, mc, cfg, out=tmp_path / "split", resume=True, progress=False).steps == 30
    assert len(list((tmp_path / "split" / BOARD_DIR).iterdir())) == 3
    whole, split = read_events(tmp_path / "whole"), read_events(tmp_path / "split")
    for tag in ("val/loss", "val/bpc", "train/lr", "train/loss", "train/grad_norm"):
        assert split[0][tag] == whole[0][tag], tag
    assert [s for s, _ in split[0]["val/loss"]] == [10, 20, 30]
    served = served_samples(tmp_path / "split")
    assert served == served_samples(tmp_path / "whole") and [s for s, _ in served] == [10, 20, 30]


def test_the_writer_closes_on_every_exit(interrupt_at, tmp_path, corpus_file, make_model_config, make_train_config,
                                         monkeypatch):
    """Guards against events lost in the writer's queue: after Ctrl-C, an error inside the loop and a
    normal end the writer was closed once, and the evaluations before the stop are on disk."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    closed, close, step = [], SummaryWriter.close, Trainer.train_step
    monkeypatch.setattr(SummaryWriter, "close", lambda self: closed.append(1) or close(self))
    cfg = make_train_config(max_steps=30, eval_every=5, tensorboard=True, sample_chars=5)
    with monkeypatch.context() as m:
        interrupt_at(m, 12)
        assert train(corpus_file, make_model_config(), cfg, out=tmp_path / "ctrl-c", progress=False).steps == 12
    assert closed == [1] and [s for s, _ in read_events(tmp_path / "ctrl-c")[0]["val/loss"]] == [5, 10]

    def failing_step(self):
        if self.state.step == 7:
            raise ChargenError("could not write", "free some disk space")
        return step(self)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_step", failing_step)
        with pytest.raises(ChargenError, match="could not write"):
            train(corpus_file, make_model_config(), cfg, out=tmp_path / "error", progress=False)
    assert closed == [1, 1] and [s for s, _ in read_events(tmp_path / "error")[0]["val/loss"]] == [5]
    train(corpus_file, make_model_config(), cfg, out=tmp_path / "done", progress=False)
    assert closed == [1, 1, 1]


def test_tensorboard_without_the_package_is_refused_before_training(tmp_path, corpus_file, make_model_config,
                                                                    make_train_config, monkeypatch):
    """Guards against a run that trains for an hour and then fails to log, or a bare ImportError: without
    the package, --tensorboard is one ChargenError naming the extra, and nothing is written."""
    monkeypatch.setitem(__import__("sys").modules, "torch.utils.tensorboard", None)
    with pytest.raises(ChargenError) as err:
        train(corpus_file, make_model_config(), make_train_config(tensorboard=True), out=tmp_path / "run",
              progress=False)
    assert "tensorboard" in err.value.message and "chargen[tensorboard]" in err.value.hint
    assert not (tmp_path / "run").exists()
    assert train(corpus_file, make_model_config(), make_train_config(max_steps=5), out=tmp_path / "plain",
                 progress=False).steps == 5  # without --tensorboard the package is not needed


# -- GPU -----------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_on_cuda_leaves_the_run_alone(tmp_path, corpus_file, make_model_config, make_train_config):
    """On CUDA too, an evaluation's sample leaves the CUDA and CPU RNG, the carried state, the mode, the
    weights (on the device, in float32 under autocast) as they were; the same seed gives the same text."""
    cfg = make_train_config(device="cuda", precision="bf16", sample_chars=64)
    corpus = load_corpus(corpus_file, cfg.val_frac)
    (tmp_path / "run").mkdir()
    mc = make_model_config(cell="lstm", num_layers=3, dropout=0.3, vocab_size=len(corpus.vocab))
    trainer = Trainer(corpus, mc, cfg, tmp_path / "run", torch.device("cuda"))
    for _ in range(3):
        trainer.train_step()
    rngs = torch.get_rng_state(), torch.cuda.get_rng_state()
    hidden = [h.clone() for h in trainer.state.hidden]
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    record = trainer.evaluate(1.0)
    assert torch.equal(torch.get_rng_state(), rngs[0]) and torch.equal(torch.cuda.get_rng_state(), rngs[1])
    assert all(torch.equal(a, b) for a, b in zip(trainer.state.hidden, hidden)) and trainer.model.training
    for name, value in trainer.model.state_dict().items():
        assert value.is_cuda and value.dtype == torch.float32 and torch.equal(value, weights[name])
    assert len(record["sample"]) == 64
    assert draw_sample(trainer.model, corpus.vocab, torch.device("cuda"), 64, cfg.seed) == record["sample"]


def test_a_records_models_preview_starts_each_record_afresh(tmp_path):
    """Guards against a preview that runs a records model as a stream: records start on the end
    symbol from a zero state, one per line, and the symbol itself never shows. The first record is
    the one sample_records draws with the same seed and temperature: one sampling program."""
    import torch

    from chargen import RECORD_END, CharRNN, ModelConfig, SampleConfig, Vocab, sample_records
    from chargen.sample.preview import SAMPLE_TEMPERATURE, draw_sample

    vocab = Vocab.from_text("abc\n" + RECORD_END)
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=7, embedding_dim=5))
    with torch.no_grad():
        model.head.bias[vocab.chars.index(RECORD_END)] += 2.0  # end often: many records in a short preview
    text = draw_sample(model, vocab, torch.device("cpu"), 60, seed=5, records=True)
    assert RECORD_END not in text and len(text) == 60 and text.count("\n") >= 3
    first = sample_records(model, vocab, SampleConfig(length=60, temperature=SAMPLE_TEMPERATURE, seed=5))
    assert first.ended == [True] and text.split("\n")[0] == first.records[0]


def test_the_preview_is_what_sample_texts_draws(tmp_path):
    """Guards against a second sampling loop: the stream preview is, character for character, the text
    sample_texts draws from the same seed at the preview's temperature, and the model's mode is kept."""
    import torch

    from chargen import CharRNN, ModelConfig, SampleConfig, Vocab, sample_texts
    from chargen.sample.preview import SAMPLE_TEMPERATURE, draw_sample

    vocab = Vocab.from_text("the cat sat on a mat\n")
    torch.manual_seed(2)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", num_layers=2, hidden_size=6, embedding_dim=5))
    text = draw_sample(model, vocab, torch.device("cpu"), 45, seed=9)
    assert model.training and len(text) == 45 and vocab.unk not in text
    assert text == sample_texts(model, vocab, SampleConfig(length=45, temperature=SAMPLE_TEMPERATURE, seed=9))[0]
