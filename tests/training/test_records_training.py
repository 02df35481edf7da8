"""Training on records: a record's loss is its own (no state or padding from its neighbours), the
step's loss is the mean over real characters, evaluation scores whole records, and a records run
resumes exactly and records its mode."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chargen import ChargenError, CharRNN, ModelConfig, evaluate_records, load_records, read_checkpoint, train
from chargen.data.record_batches import IGNORE, padded_rows
from chargen.data.records import RECORD_END, encode_records, records_vocab
from chargen.training.distributed import World
from chargen.training.trainer import Trainer

NAMES = [a + b + c for a in ("ka", "lo", "mi", "ra", "su", "te") for b in ("ne", "to", "su", "ri", "va", "mo")
         for c in ("", "x", "yo", "lin")]  # 144 records of 4 to 7 characters


@pytest.fixture
def names_file(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


def tiny(cell: str, vocab_size: int, layers: str | None = None) -> CharRNN:
    torch.manual_seed(4)
    return CharRNN(ModelConfig(vocab_size=vocab_size, cell=cell, num_layers=2, hidden_size=7, embedding_dim=5,
                               dropout=0.0), layers)


def record_losses(model: CharRNN, records, rows: np.ndarray, mean: bool = False) -> torch.Tensor:
    """Loss (R,) of each row's record, summed (or per character), from one padded batch."""
    x, y = padded_rows(records, rows)  # (R, T) each
    logits, _ = model(x)  # (R, T, V)
    per = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="none")  # (R*T,)
    total = per.view(y.shape).sum(1)
    return total / (y != IGNORE).sum(1) if mean else total


@pytest.mark.parametrize("cell, layers", [("gru", "fused_gru"), ("lstm", "torch"), ("rnn", "torch")])
def test_a_records_loss_does_not_depend_on_the_records_around_it(cell, layers):
    """The issue's guarantee: record B scores the same whatever record precedes it in the file, in
    whichever row and batch it lands, padded or not (training layers, gradients on), and equal to
    B alone from a zero state. Guards against a state carried from the previous record, padding
    that leaks into the scored outputs, or a row that does not start on B's own end symbol."""
    b = "mitosuyo"
    vocab = records_vocab(NAMES + [b, "ranevalinx"])
    model = tiny(cell, len(vocab), layers).train()
    first = encode_records(["kane", b], vocab)  # B second in the file, after "kane"
    second = encode_records(["ranevalinx", "lox", "mi", b, "kasux"], vocab)  # B after "mi"; rows of 11
    got_first = record_losses(model, first, np.array([1, 0]), mean=True)[0]  # B in row 0, no padding
    got_second = record_losses(model, second, np.array([4, 0, 3, 1, 2]), mean=True)[2]  # B in row 2, padded by 2
    ids = vocab.encode(RECORD_END + b + RECORD_END)
    logits, _ = model(ids[None, :-1])  # (1, 9, V)
    alone = F.cross_entropy(logits[0], ids[1:])  # nats per character
    assert abs(got_first.item() - got_second.item()) < 1e-6
    assert abs(got_first.item() - alone.item()) < 1e-6
    assert got_first.item() > 1.0  # a real loss, not a masked-out zero


def make_trainer(tmp_path, names_file, make_train_config, cell="gru", **overrides) -> Trainer:
    cfg = make_train_config(records="lines", **overrides)
    corpus = load_records(names_file, "lines", cfg.val_frac)
    mc = ModelConfig(vocab_size=len(corpus.vocab), cell=cell, num_layers=1, hidden_size=9, embedding_dim=6,
                     dropout=0.0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return Trainer(corpus, mc, cfg, run_dir, torch.device("cpu"))


def test_step_loss_is_the_mean_over_real_characters(tmp_path, names_file, make_train_config):
    """Guards against padding counted in the mean (a batch of short records would read as better)
    or a state carried into a records batch: the step's loss is the summed per-record loss of its
    rows over the characters they score."""
    trainer = make_trainer(tmp_path, names_file, make_train_config, batch_size=3, seq_len=10)
    before = CharRNN(trainer.model.config)
    before.load_state_dict(trainer.model.state_dict())
    batcher = trainer.batcher
    batcher.batch(0, 0)  # makes epoch 0's plan
    b = batcher.plan[0]
    rows = batcher.order[batcher.bounds[b]: batcher.bounds[b + 1]]
    expected = record_losses(before, trainer.corpus.train, rows).sum() / trainer.corpus.train.sizes[rows].sum()
    loss, _ = trainer.train_step()
    assert len(rows) > 1 and trainer.step_chars == int(trainer.corpus.train.sizes[rows].sum())
    assert loss == pytest.approx(expected.item(), abs=1e-5)
    assert trainer.state.hidden is None


def test_evaluate_records_matches_each_record_alone():
    """Whole-record evaluation (batched, chunked in time with the state carried) must equal scoring
    each record alone from a zero state, end symbol included."""
    vocab = records_vocab(NAMES)
    model = tiny("lstm", len(vocab)).eval()
    records = NAMES[::7]
    rs = encode_records(records, vocab)
    total = 0.0
    with torch.no_grad():
        for text in records:
            ids = vocab.encode(RECORD_END + text + RECORD_END)
            logits, _ = model(ids[None, :-1])
            total += F.cross_entropy(logits[0], ids[1:], reduction="sum").item()
    result = evaluate_records(model, rs, torch.device("cpu"), budget=20, chunk=3)
    assert result.chars == sum(len(t) + 1 for t in records)
    assert result.loss == pytest.approx(total / result.chars, rel=1e-6)


def test_records_run_learns_and_records_its_mode(tmp_path, names_file, make_model_config, make_train_config):
    """A records run must lower the validation loss well below uniform, and its checkpoint must name
    the mode and the corpus so that resume, sample --unique and eval know them."""
    cfg = make_train_config(records="lines", batch_size=4, seq_len=16, max_steps=60, eval_every=30, lr=3e-2,
                            val_frac=0.2)
    result = train(names_file, make_model_config(cell="gru"), cfg, out=tmp_path / "run", progress=False)
    vocab_size = len(load_records(names_file, "lines", 0.2).vocab)
    assert result.best_val_loss < 0.6 * math.log(vocab_size)
    assert result.records["train"] + result.records["val"] == len(NAMES) and result.records["skipped"] == 0
    stored = read_checkpoint(tmp_path / "run" / "last.pt")
    assert stored["train_config"]["records"] == "lines" and stored["hidden"] is None
    assert stored["run_state"]["corpus"] == str(names_file.resolve())


def test_records_resume_equals_uninterrupted_run(interrupt_at, tmp_path, names_file, make_model_config,
                                                 make_train_config, monkeypatch):
    """A records run stopped mid-epoch and resumed must end with exactly the weights of one that was
    not: the batches of an epoch depend on (seed, epoch) alone."""
    cfg = make_train_config(records="lines", batch_size=6, seq_len=8, max_steps=30)
    mc = make_model_config(cell="gru", num_layers=1, hidden_size=10)
    whole = train(names_file, mc, cfg, out=tmp_path / "whole", progress=False)
    assert whole.steps == 30
    with monkeypatch.context() as m:
        interrupt_at(m, 13)
        assert train(names_file, mc, cfg, out=tmp_path / "parts", progress=False).stop_reason == "interrupted"
    train(names_file, mc, cfg, out=tmp_path / "parts", resume=True, progress=False)
    a, b = (read_checkpoint(tmp_path / d / "last.pt") for d in ("whole", "parts"))
    assert a["epoch"] == b["epoch"] >= 1  # the runs crossed an epoch end
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name


def test_records_refuse_several_processes(tmp_path, names_file, make_train_config):
    """Record batches are not split over ranks: torchrun with --records must fail with a hint, not hang."""
    cfg = make_train_config(records="lines")
    corpus = load_records(names_file, "lines", 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), num_layers=1, hidden_size=5, embedding_dim=3)
    with pytest.raises(ChargenError, match="one process"):
        Trainer(corpus, mc, cfg, tmp_path, torch.device("cpu"), World(0, 2, 0))
