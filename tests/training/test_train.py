"""config.py, trainer.py, train.py, evaluate.py: validation, schedule, the TBPTT loop,
clipping, resume, metrics, non-finite losses and Ctrl-C (run folders: test_runs.py)."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from chargen import (
    ChargenError,
    CharRNN,
    TrainConfig,
    evaluate_carried,
    evaluate_windows,
    load_corpus,
    read_checkpoint,
    train,
)
from chargen.model.charrnn import ModelConfig
from chargen.training.schedule import lr_at
from chargen.training.loop import MAX_BAD_STEPS
from chargen.training.trainer import Trainer

VOLATILE = ("elapsed", "chars_per_s")  # wall-clock fields: the only ones allowed to differ between runs


def metrics(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def stable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def make_trainer(tmp_path, corpus_file, model_cfg: ModelConfig, cfg: TrainConfig) -> Trainer:
    corpus = load_corpus(corpus_file, cfg.val_frac)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    mc = ModelConfig(**{**model_cfg.to_dict(), "vocab_size": len(corpus.vocab)})
    return Trainer(corpus, mc, cfg, run_dir, torch.device("cpu"))


# -- TrainConfig ------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("batch_size", 0), ("batch_size", -3), ("batch_size", 2.5), ("batch_size", True), ("seq_len", 0),
    ("lr", 0.0), ("lr", -1e-3), ("lr", math.nan), ("lr", math.inf), ("weight_decay", -0.1),
    ("weight_decay", math.nan), ("warmup_steps", -1), ("min_lr_frac", 1.5), ("min_lr_frac", -0.1),
    ("grad_clip", 0.0), ("grad_clip", -1.0), ("grad_clip", math.nan), ("max_steps", -1), ("max_time", -1.0),
    ("max_time", math.nan), ("patience", -1), ("eval_every", -1), ("save_every", 0), ("val_frac", 0.95),
    ("val_frac", -0.1), ("val_frac", math.nan), ("seed", -1),
])
def test_train_config_rejects_bad_values(field, value):
    """Negative, zero, NaN or wrongly typed settings must raise ChargenError naming the field and its flag."""
    with pytest.raises(ChargenError) as err:
        TrainConfig(**{field: value})
    assert field in err.value.message
    assert f"--{field.replace('_', '-')}" in err.value.hint


def test_train_config_needs_a_limit():
    """max_steps=0 and max_time=0 together would train forever; that must be refused."""
    with pytest.raises(ChargenError, match="limit"):
        TrainConfig(max_steps=0, max_time=0)


# -- lr_at ------------------------------------------------------------------------------
@settings(deadline=None, max_examples=60)
@given(warmup=st.integers(1, 30), extra=st.integers(1, 200), lr=st.floats(1e-5, 1.0),
       floor=st.floats(0.0, 1.0))
def test_lr_schedule_shape(warmup, extra, lr, floor):
    """Warmup rises linearly to lr, then the rate never rises again and ends at min_lr_frac * lr."""
    cfg = TrainConfig(lr=lr, warmup_steps=warmup, min_lr_frac=floor, max_steps=warmup + extra, max_time=0)
    rates = [lr_at(cfg, s, 0.0) for s in range(cfg.max_steps + 1)]
    for s in range(warmup):
        assert rates[s] == pytest.approx(lr * (s + 1) / warmup)
    assert max(rates) == pytest.approx(lr)
    assert rates[warmup - 1] == pytest.approx(lr) and rates[warmup] == pytest.approx(lr)
    after = rates[warmup:]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    assert rates[-1] == pytest.approx(floor * lr)


def test_lr_schedule_by_time():
    """Without max_steps the decay follows elapsed seconds over max_time, and stays at the floor past it."""
    cfg = TrainConfig(lr=0.01, warmup_steps=2, min_lr_frac=0.1, max_steps=0, max_time=100.0)
    assert lr_at(cfg, 50, 0.0) == pytest.approx(0.01)
    assert lr_at(cfg, 50, 50.0) == pytest.approx(0.01 * (0.1 + 0.9 * 0.5))
    assert lr_at(cfg, 50, 100.0) == pytest.approx(0.001)
    assert lr_at(cfg, 50, 1000.0) == pytest.approx(0.001)


@settings(deadline=None, max_examples=80)
@given(warmup=st.integers(0, 20), steps=st.integers(21, 200), at=st.floats(0.0, 1.2), extra=st.integers(1, 300),
       by_time=st.booleans(), floor=st.floats(0.0, 0.9))
def test_extended_schedule_is_continuous_and_ends_at_the_floor(warmup, steps, at, extra, by_time, floor):
    """A budget extended at any point (in the warmup, mid-decay, or after the end) must keep the rate the
    run had there, never rise after it once past the warmup, and end at the floor; a second extension too."""
    from chargen.training.schedule import extend_budget

    cfg = TrainConfig(lr=0.01, warmup_steps=warmup, min_lr_frac=floor, max_steps=0 if by_time else steps,
                      max_time=100.0 if by_time else 0.0)
    step, elapsed = max(1, round(at * steps)), at * 100.0
    more = dict(more_time=float(extra)) if by_time else dict(max_steps=step + extra)
    new, state = extend_budget(cfg, step, elapsed, **more)
    assert lr_at(new, step, elapsed, state) == pytest.approx(lr_at(cfg, step, elapsed), rel=1e-12, abs=1e-15)

    def rate(k: int) -> float:  # the rate k steps (or k seconds) past the resume point
        return lr_at(new, step + k, elapsed + k if by_time else elapsed, state)

    rates = [rate(k) for k in range(extra + 1)]
    if step + extra > warmup:  # a budget that ends inside the warmup never decays, as in a fresh run
        assert rates[-1] == pytest.approx(floor * 0.01)
    past_warmup = rates[max(0, warmup - step):]
    assert all(b <= a + 1e-12 for a, b in zip(past_warmup, past_warmup[1:]))
    again, again_state = extend_budget(new, step + extra // 2, elapsed + extra // 2 if by_time else elapsed,
                                       **(dict(more_time=50.0) if by_time else dict(max_steps=step + extra + 50)),
                                       state=state)
    k = extra // 2
    assert lr_at(again, step + k, elapsed + k if by_time else elapsed, again_state) == pytest.approx(
        rate(k), rel=1e-12, abs=1e-15)


def test_extended_schedule_of_a_finished_run_stays_at_the_floor_and_takes_the_new_limits():
    """A finished run has decayed to the floor: an extension continues there. The limits given replace the
    run's (the other turns off), a step limit already reached is refused, and no limit at all is refused."""
    from chargen.training.schedule import extend_budget

    cfg = TrainConfig(lr=0.01, warmup_steps=5, min_lr_frac=0.1, max_steps=100, max_time=600.0)
    new, state = extend_budget(cfg, 100, 42.0, max_steps=150)
    assert (new.max_steps, new.max_time, state.extended_at_step) == (150, 0.0, 100)
    assert state.extended_from_lr == pytest.approx(0.001)
    assert [lr_at(new, s, 0.0, state) for s in (100, 120, 150)] == [pytest.approx(0.001)] * 3
    timed, timed_state = extend_budget(cfg, 100, 42.0, more_time=300.0)
    assert (timed.max_steps, timed.max_time) == (0, 342.0)
    assert lr_at(timed, 101, 342.0, timed_state) == pytest.approx(0.001)
    mid, mid_state = extend_budget(cfg, 50, 20.0, more_time=10.0)  # interrupted halfway down: a new decay from there
    assert lr_at(mid, 50, 20.0, mid_state) == pytest.approx(lr_at(cfg, 50, 20.0)) and lr_at(cfg, 50, 20.0) > 0.005
    assert lr_at(mid, 60, 25.0, mid_state) < lr_at(mid, 60, 20.0, mid_state)
    assert lr_at(mid, 60, 30.0, mid_state) == pytest.approx(0.001)
    early, early_state = extend_budget(cfg, 3, 1.0, max_steps=300)  # in the warmup: it goes on, then one decay
    assert early_state.extended_at_step == 0 and [lr_at(early, s, 0.0, early_state) for s in (3, 4, 5)] == [
        pytest.approx(0.008), pytest.approx(0.01), pytest.approx(0.01)]
    with pytest.raises(ChargenError, match="at step 100 already") as err:
        extend_budget(cfg, 100, 42.0, max_steps=100)
    assert "--max-steps above 100" in err.value.hint
    with pytest.raises(ChargenError, match="training needs a limit"):
        extend_budget(cfg, 100, 42.0, more_time=0.0)


# -- evaluation -------------------------------------------------------------------------
def test_evaluate_carried_matches_naive_loss():
    """Carried evaluation must equal the plain mean cross-entropy of each stream run in one go, whatever the chunk."""
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=7, cell="gru", num_layers=1, hidden_size=6, embedding_dim=5)).eval()
    ids = torch.randint(7, (23,))
    streams, stream_len = 3, 23 // 3
    data = ids[: streams * stream_len].view(streams, stream_len)
    with torch.no_grad():
        logits, _ = model(data[:, :-1])
        naive = F.cross_entropy(logits.flatten(0, 1), data[:, 1:].flatten()).item()
    for chunk in (1, 2, 512):
        result = evaluate_carried(model, ids, torch.device("cpu"), streams=3, chunk=chunk)
        assert result.chars == streams * (stream_len - 1)
        assert result.loss == pytest.approx(naive, abs=1e-5)
        assert result.bpc == pytest.approx(naive / math.log(2), abs=1e-5)
    assert not model.training


def test_evaluate_windows_restores_training_mode():
    """Window evaluation must score count*window characters and hand the model back in the mode it came in."""
    model = CharRNN(ModelConfig(vocab_size=7, cell="rnn", num_layers=1, hidden_size=6, embedding_dim=5)).train()
    ids = torch.randint(7, (40,))
    a = evaluate_windows(model, ids, torch.device("cpu"), window=8, count=10, batch=3, seed=2)
    b = evaluate_windows(model, ids, torch.device("cpu"), window=8, count=10, batch=10, seed=2)
    assert a.chars == 80 and a.loss == pytest.approx(b.loss, abs=1e-6)
    assert model.training
    with pytest.raises(ChargenError, match="too short"):
        evaluate_windows(model, ids, torch.device("cpu"), window=40)


# -- learning ---------------------------------------------------------------------------
def test_training_learns_repetitive_text(tmp_path, corpus_file, make_model_config, make_train_config):
    """On a repeated poem the validation loss must fall far below the uniform log(V), and below the first eval."""
    result = train(corpus_file, make_model_config(num_layers=1, hidden_size=24),
                   make_train_config(lr=3e-2, max_steps=150, eval_every=25, save_every=50),
                   out=tmp_path / "run", progress=False)
    vocab_size = len(read_checkpoint(tmp_path / "run" / "best.pt")["vocab"])
    assert result.stop_reason == "max_steps" and result.steps == 150
    assert result.best_val_loss < 0.4 * math.log(vocab_size)
    assert result.best_val_loss < result.history[0]["val_loss"] - 0.5
    assert result.best_val_bpc == pytest.approx(result.best_val_loss / math.log(2))


def test_seeded_runs_are_identical(tmp_path, corpus_file, make_model_config, make_train_config):
    """Two CPU runs with one seed (dropout on) must give bit-identical weights and metrics."""
    mc, cfg = make_model_config(dropout=0.2), make_train_config(max_steps=20)
    a = train(corpus_file, mc, cfg, out=tmp_path / "a", progress=False)
    b = train(corpus_file, mc, cfg, out=tmp_path / "b", progress=False)
    assert_same_weights(read_checkpoint(a.run_dir / "last.pt")["model"],
                        read_checkpoint(b.run_dir / "last.pt")["model"])
    assert stable(metrics(a.run_dir)) == stable(metrics(b.run_dir))
    c = train(corpus_file, mc, make_train_config(max_steps=20, seed=2), out=tmp_path / "c", progress=False)
    assert not torch.equal(read_checkpoint(c.run_dir / "last.pt")["model"]["head.weight"],
                           read_checkpoint(a.run_dir / "last.pt")["model"]["head.weight"])


# -- the TBPTT step ---------------------------------------------------------------------
def record_forward(model, calls: list):
    original = model.forward

    def forward(x, hidden=None):
        logits, new_hidden = original(x, hidden)
        calls.append((x.clone(), hidden, new_hidden))
        return logits, new_hidden

    model.forward = forward


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_hidden_state_carried_between_windows(tmp_path, corpus_file, make_model_config, make_train_config, cell):
    """Window w+1 must start from the (detached) state window w ended in, and see the next slice of each stream."""
    trainer = make_trainer(tmp_path, corpus_file, make_model_config(cell=cell), make_train_config())
    calls = []
    record_forward(trainer.model, calls)
    for _ in range(3):
        trainer.train_step()
    assert calls[0][1] is None
    for w in (1, 2):
        _, given_in, _ = calls[w]
        _, _, produced = calls[w - 1]
        for a, b in zip(given_in if cell == "lstm" else [given_in], produced if cell == "lstm" else [produced]):
            assert torch.equal(a, b) and a.grad_fn is None
        assert torch.equal(calls[w][0], trainer.batcher.window(w)[0])
    state = trainer.state.hidden
    for a, b in zip(state if cell == "lstm" else [state], calls[2][2] if cell == "lstm" else [calls[2][2]]):
        assert torch.equal(a, b) and a.grad_fn is None
    assert (trainer.state.step, trainer.state.window, trainer.state.epoch) == (3, 3, 0)


def test_epoch_end_restarts_state(tmp_path, corpus_file, make_model_config, make_train_config):
    """After the last window the next step must start epoch 1 at window 0 from a zero (None) state."""
    trainer = make_trainer(tmp_path, corpus_file, make_model_config(hidden_size=8),
                           make_train_config(batch_size=8, seq_len=40))
    windows = len(trainer.batcher)
    assert windows == 6  # 2034 train ids / 8 streams = 254 per stream; (254 - 1) // 40 = 6
    for _ in range(windows):
        trainer.train_step()
    assert (trainer.state.epoch, trainer.state.window) == (0, windows)
    assert trainer.state.hidden is not None
    calls = []
    record_forward(trainer.model, calls)
    trainer.train_step()
    x, given_in, _ = calls[0]
    assert given_in is None
    assert torch.equal(x, trainer.batcher.window(0)[0])
    assert (trainer.state.epoch, trainer.state.window, trainer.state.step) == (1, 1, windows + 1)


def test_gradient_clipped_to_bound(tmp_path, corpus_file, make_model_config, make_train_config):
    """After a step the global gradient norm must be at most grad_clip; the returned norm is the larger pre-clip one."""
    clip = 1e-3
    trainer = make_trainer(tmp_path, corpus_file, make_model_config(), make_train_config(grad_clip=clip))
    loss, pre_clip = trainer.train_step()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert len(grads) == len(list(trainer.model.parameters()))
    post_clip = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
    assert post_clip <= clip + 1e-6
    assert pre_clip > 10 * clip
    assert post_clip == pytest.approx(clip, rel=1e-3)
    assert math.isfinite(loss) and loss > 0


def test_train_step_matches_reference_update(tmp_path, corpus_file, make_model_config, make_train_config):
    """One step must be exactly: forward, mean cross-entropy, backward, clip, one optimizer step at lr_at(step 0)."""
    cfg = make_train_config(grad_clip=0.05, warmup_steps=3)
    trainer = make_trainer(tmp_path, corpus_file, make_model_config(cell="gru"), cfg)
    ref = copy.deepcopy(trainer.model)
    settings_ = {k: v for k, v in trainer.optimizer.param_groups[0].items() if k != "params"}
    opt = type(trainer.optimizer)(ref.parameters())
    opt.param_groups[0].update({**settings_, "lr": lr_at(cfg, 0, 0.0)})  # same betas, decay, eps as the trainer
    x, y = trainer.batcher.window(0)  # (B, T) each
    amp = getattr(trainer, "amp_dtype", None)  # the trainer's one mixed-precision decision, if it makes one
    with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
        logits, _ = ref(x)  # (B, T, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), cfg.grad_clip)
    opt.step()

    got_loss, got_norm = trainer.train_step()
    assert got_loss == pytest.approx(loss.item(), abs=1e-6)
    assert got_norm == pytest.approx(norm.item(), rel=1e-5)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.lr / 3)
    for (name, a), b in zip(trainer.model.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_first_step_loss_is_near_uniform(tmp_path, corpus_file, make_model_config, make_train_config):
    """An untrained model's loss is about log(V); a far-off value means the targets or logits are misaligned."""
    trainer = make_trainer(tmp_path, corpus_file, make_model_config(), make_train_config())
    loss, _ = trainer.train_step()
    assert loss == pytest.approx(math.log(len(trainer.corpus.vocab)), abs=0.3)


# -- resume -----------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_resume_equals_uninterrupted_run(interrupt_at, tmp_path, corpus_file, make_model_config, make_train_config,
                                         monkeypatch, cell):
    """Stopping at step k and resuming must reproduce the N-step run exactly: weights, optimizer and metrics."""
    mc = make_model_config(cell=cell, dropout=0.2)  # dropout: the RNG state must be restored too
    cfg = make_train_config(max_steps=12, eval_every=4, save_every=4)
    whole = train(corpus_file, mc, cfg, out=tmp_path / "whole", progress=False)

    with monkeypatch.context() as m:
        interrupt_at(m, 6)
        first = train(corpus_file, mc, cfg, out=tmp_path / "split", progress=False)
    assert (first.stop_reason, first.steps) == ("interrupted", 6)
    # The passed configs are ignored on resume: a wrong one must not matter.
    resumed = train(corpus_file, make_model_config(cell=cell, hidden_size=99), make_train_config(max_steps=3),
                    out=tmp_path / "split", resume=True, progress=False)
    assert (resumed.stop_reason, resumed.steps) == ("max_steps", 12)

    a, b = read_checkpoint(tmp_path / "whole" / "last.pt"), read_checkpoint(tmp_path / "split" / "last.pt")
    assert_same_weights(a["model"], b["model"])
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][key][name]), name
    assert (a["step"], a["epoch"], a["window"]) == (b["step"], b["epoch"], b["window"])
    assert a["best_val_loss"] == b["best_val_loss"]
    assert stable(metrics(tmp_path / "whole")) == stable(metrics(tmp_path / "split"))
    assert whole.best_val_loss == resumed.best_val_loss


def test_resume_of_finished_run_adds_nothing(tmp_path, corpus_file, make_model_config, make_train_config):
    """Resuming a run that already reached max_steps must not append a duplicate evaluation (with a NaN train loss)."""
    mc, cfg = make_model_config(), make_train_config(max_steps=10, eval_every=5)
    train(corpus_file, mc, cfg, out=tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    result = train(corpus_file, mc, cfg, out=tmp_path / "run", resume=True, progress=False)
    assert (result.steps, result.stop_reason) == (10, "max_steps")
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


def test_resume_with_more_steps_continues_and_resumes_exactly(interrupt_at, tmp_path, corpus_file, make_model_config,
                                                             make_train_config, monkeypatch):
    """A finished run given a new step limit must go on from its step at the rate it ended with (the floor),
    and that extended run, interrupted and resumed plainly, must reproduce its uninterrupted self."""
    mc, cfg = make_model_config(), make_train_config(max_steps=10, eval_every=2, save_every=2)
    for name in ("whole", "split"):
        train(corpus_file, mc, cfg, out=tmp_path / name, progress=False)
    whole = train(corpus_file, mc, cfg, out=tmp_path / "whole", resume=True, max_steps=16, progress=False)
    assert (whole.steps, whole.stop_reason) == (16, "max_steps")
    records = metrics(tmp_path / "whole")
    floor = cfg.lr * cfg.min_lr_frac
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert records[4]["lr"] > floor  # the rate of step 10 (index 9); the schedule reaches the floor at index 10
    assert [r["lr"] for r in records[5:]] == [pytest.approx(floor)] * 3  # and goes on there
    with monkeypatch.context() as m:
        interrupt_at(m, 13)
        first = train(corpus_file, mc, cfg, out=tmp_path / "split", resume=True, max_steps=16, progress=False)
    assert (first.steps, first.stop_reason) == (13, "interrupted")
    rest = train(corpus_file, mc, cfg, out=tmp_path / "split", resume=True, progress=False)
    assert (rest.steps, rest.stop_reason) == (16, "max_steps")
    assert stable(metrics(tmp_path / "split")) == stable(records)
    assert_same_weights(read_checkpoint(tmp_path / "whole" / "last.pt")["model"],
                        read_checkpoint(tmp_path / "split" / "last.pt")["model"])


def test_new_budget_restarts_patience(tmp_path, corpus_file, make_model_config, make_train_config):
    """A run stopped by patience stays stopped on a plain resume, but a new budget gives patience a fresh count."""
    from chargen.modelfile.checkpoint import save_checkpoint

    train(corpus_file, make_model_config(), make_train_config(max_steps=10, eval_every=5), out=tmp_path / "run",
          progress=False)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    state["train_config"]["patience"], state["evals_since_best"] = 2, 2  # as if patience had stopped it
    state["train_config"]["max_steps"] = 100
    save_checkpoint(state, tmp_path / "run" / "last.pt")
    plain = train(corpus_file, make_model_config(), make_train_config(), out=tmp_path / "run", resume=True,
                  progress=False)
    assert (plain.steps, plain.stop_reason) == (10, "patience")
    more = train(corpus_file, make_model_config(), make_train_config(), out=tmp_path / "run", resume=True,
                 max_steps=20, progress=False)
    assert (more.steps, more.stop_reason) == (20, "max_steps")


def test_resume_with_other_corpus_refused(tmp_path, corpus_file, make_model_config, make_train_config):
    """Resuming on a text with other characters would scramble the ids; it must be refused."""
    train(corpus_file, make_model_config(), make_train_config(max_steps=5), out=tmp_path / "run", progress=False)
    other = tmp_path / "other.txt"
    other.write_text("zyx wvu " * 200, encoding="utf-8")
    with pytest.raises(ChargenError, match="characters differ"):
        train(other, make_model_config(), make_train_config(), out=tmp_path / "run", resume=True, progress=False)


# -- metrics and best.pt ----------------------------------------------------------------
def test_metrics_and_best_checkpoint(tmp_path, corpus_file, make_model_config, make_train_config):
    """metrics.jsonl has one line per evaluation; best.pt holds the weights and step of the lowest val loss."""
    result = train(corpus_file, make_model_config(), make_train_config(max_steps=25, eval_every=10, lr=3e-2),
                   out=tmp_path / "run", progress=False)
    records = metrics(result.run_dir)
    assert [r["step"] for r in records] == [10, 20, 25]  # the final step is evaluated too
    assert records == result.history
    for r in records:
        assert r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
        assert math.isfinite(r["train_loss"]) and r["lr"] > 0
    best_record = min(records, key=lambda r: r["val_loss"])
    best = read_checkpoint(result.run_dir / "best.pt")
    assert best["best_val_loss"] == best_record["val_loss"] == result.best_val_loss
    assert best["step"] == best_record["step"]
    assert [r["best"] for r in records] == [r["val_loss"] == min(x["val_loss"] for x in records[: i + 1])
                                            for i, r in enumerate(records)]
    assert read_checkpoint(result.run_dir / "last.pt")["step"] == 25


def test_no_validation_never_stops_for_patience(tmp_path, corpus_file, make_model_config, make_train_config):
    """With --val-frac 0 there is nothing to improve on, so patience must not end the run early."""
    result = train(corpus_file, make_model_config(), make_train_config(val_frac=0.0, patience=2, eval_every=2,
                                                                       max_steps=10),
                   out=tmp_path / "run", progress=False)
    assert (result.stop_reason, result.steps) == ("max_steps", 10)


def test_patience_stops_run(tmp_path, corpus_file, make_model_config, make_train_config):
    """A validation loss that no longer improves must stop the run after `patience` evaluations."""
    result = train(corpus_file, make_model_config(), make_train_config(lr=1e-9, warmup_steps=0, patience=2,
                                                                       eval_every=1, max_steps=50),
                   out=tmp_path / "run", progress=False)
    assert result.stop_reason == "patience"
    assert result.steps < 50
    assert sum(not r["best"] for r in metrics(result.run_dir)[-2:]) == 2


# -- non-finite loss and Ctrl-C ---------------------------------------------------------
def poison_from(monkeypatch, step: int) -> None:
    """From `step` on, every forward (training and evaluation) returns NaN logits."""
    on = {"poisoned": False}
    original_step, original_forward = Trainer.train_step, CharRNN.forward

    def train_step(self):
        on["poisoned"] = on["poisoned"] or self.state.step >= step
        return original_step(self)

    def forward(self, x, hidden=None):
        logits, hidden = original_forward(self, x, hidden)
        return (logits * math.nan if on["poisoned"] else logits), hidden

    monkeypatch.setattr(Trainer, "train_step", train_step)
    monkeypatch.setattr(CharRNN, "forward", forward)


def test_nan_loss_never_saved_and_stops(tmp_path, corpus_file, make_model_config, make_train_config, monkeypatch):
    """NaN losses must not update weights or become best.pt; after 5 in a row training stops with finite files."""
    poison_from(monkeypatch, 6)
    with pytest.raises(ChargenError) as err:
        train(corpus_file, make_model_config(), make_train_config(max_steps=40, eval_every=2, save_every=2),
              out=tmp_path / "run", progress=False)
    assert "not finite" in err.value.message and err.value.hint
    monkeypatch.undo()
    best, last = read_checkpoint(tmp_path / "run" / "best.pt"), read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 6 + MAX_BAD_STEPS
    assert best["step"] <= 6 and math.isfinite(best["best_val_loss"])
    for ckpt in (best, last):
        assert all(torch.isfinite(w).all() for w in ckpt["model"].values())
    records = metrics(tmp_path / "run")
    assert all(r["best"] is False for r in records if r["step"] > 6)
    assert best["best_val_loss"] == min(r["val_loss"] for r in records if r["step"] <= 6)


def test_metrics_lines_are_strict_json_after_nan(tmp_path, corpus_file, make_model_config, make_train_config,
                                                 monkeypatch):
    """metrics.jsonl must stay standard JSON (null, not NaN) so jq and other parsers can read a failed run."""
    poison_from(monkeypatch, 4)
    with pytest.raises(ChargenError):
        train(corpus_file, make_model_config(), make_train_config(max_steps=40, eval_every=2),
              out=tmp_path / "run", progress=False)

    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=reject)


def test_nan_message_states_smallest_rate_tried(tmp_path, corpus_file, make_model_config, make_train_config,
                                                monkeypatch):
    """The give-up message must name the smallest learning-rate fraction actually tried, not one never used."""
    poison_from(monkeypatch, 2)
    with pytest.raises(ChargenError) as err:
        train(corpus_file, make_model_config(), make_train_config(max_steps=40), out=tmp_path / "run",
              progress=False)
    assert f"1/{2 ** (MAX_BAD_STEPS - 1)} of the learning rate" in err.value.message


def test_keyboard_interrupt_saves_last(interrupt_at, tmp_path, corpus_file, make_model_config, make_train_config,
                                       monkeypatch):
    """Ctrl-C at step k must save last.pt at step k, release the lock, and return stop_reason 'interrupted'."""
    interrupt_at(monkeypatch, 7)
    result = train(corpus_file, make_model_config(), make_train_config(max_steps=30, save_every=5),
                   out=tmp_path / "run", progress=False)
    assert (result.stop_reason, result.steps) == ("interrupted", 7)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert (last["step"], last["window"]) == (7, 7)
    assert last["hidden"] is not None and len(last["hidden"]) == 2  # an LSTM's (h, c)
    assert not (tmp_path / "run" / "run.lock").exists()
