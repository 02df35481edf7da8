"""Reading a step's figures a step late (what the trainer does on a GPU, so that the host never
waits for the step it has just queued), checked on the CPU by setting the lag by hand.

The update and the state restart of a bad step are decided on the device; only the host's
counting of bad steps, and so the halving of the learning rate, waits for the figures.
"""
from __future__ import annotations

import math

import pytest
import torch
from test_train import make_trainer


def run(tmp_path, name, corpus_file, model_cfg, cfg, lag: int, steps: int, poison_at: int | None = None):
    (tmp_path / name).mkdir()
    trainer = make_trainer(tmp_path / name, corpus_file, model_cfg, cfg)
    trainer.lag = lag
    returned, weights_after = [], []
    for i in range(steps):
        handle = None
        if i == poison_at:  # this step's gradients (and so its norm) are not finite
            handle = trainer.model.head.weight.register_hook(lambda g: g * math.nan)
        returned.append(trainer.train_step())
        if handle:
            handle.remove()
        weights_after.append([p.detach().clone() for p in trainer.model.parameters()])
    return trainer, returned, weights_after


def test_a_lag_of_one_returns_each_steps_figures_one_call_late_and_changes_no_weight(
        tmp_path, corpus_file, make_model_config, make_train_config):
    """Same seed: the lagged trainer's k-th call returns the unlagged one's (k-1)-th figures, bit for
    bit, the weights after every step are identical, and settle() then reads the last step."""
    cfg, mc = make_train_config(max_steps=20), make_model_config()
    now, figures_now, weights_now = run(tmp_path, "now", corpus_file, mc, cfg, lag=0, steps=6)
    late, figures_late, weights_late = run(tmp_path, "late", corpus_file, mc, cfg, lag=1, steps=6)
    assert all(math.isnan(x) for x in figures_late[0])  # nothing read yet after the first call
    assert figures_late[1:] == figures_now[:-1]
    assert all(math.isfinite(loss) and norm > 0 for loss, norm in figures_now)
    assert len(set(figures_now)) == 6  # the figures move: a constant would agree trivially
    for a, b in zip(weights_now, weights_late):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert len(late.unread) == 1
    assert late.settle() == figures_now[-1] and not late.unread


def test_a_bad_step_is_skipped_on_the_device_and_counted_when_read(
        tmp_path, corpus_file, make_model_config, make_train_config):
    """A NaN gradient at step 3: the weights do not move at that step and the state restarts
    there (both before any figure is read); the host counts the bad step one call later and
    halves the learning rate for the step after that; then training goes on."""
    cfg, mc = make_train_config(max_steps=20, warmup_steps=0), make_model_config()
    trainer, figures, weights = run(tmp_path, "late", corpus_file, mc, cfg, lag=1, steps=3, poison_at=2)
    assert all(torch.equal(x, y) for x, y in zip(weights[1], weights[2]))  # step 3 was skipped
    assert not all(torch.equal(x, y) for x, y in zip(weights[0], weights[1]))  # step 2 was not
    assert all(not h.any() for h in trainer.state.hidden)  # restarted: zeros
    assert trainer.bad_steps == 0 and len(trainer.unread) == 1  # not read yet
    lr_before = trainer.lr
    loss, norm = trainer.train_step()  # reads step 3's figures
    assert trainer.bad_steps == 1 and math.isfinite(loss) and math.isnan(norm)
    trainer.train_step()  # the first step queued knowing of the bad one
    assert trainer.lr < 0.6 * lr_before
    assert trainer.bad_steps == 0  # step 4 was fine
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def lagged_and_poisoned(monkeypatch, steps) -> None:
    """Every trainer reads its figures a step late (as on a GPU), and the training forward of the
    steps numbered in `steps` (counting from 1) returns NaN logits."""
    from chargen.model.charrnn import CharRNN
    from chargen.training.trainer import Trainer

    on = {"poisoned": False}
    original_step, original_forward = Trainer.train_step, CharRNN.forward

    def train_step(self):
        self.lag = 1
        on["poisoned"] = self.state.step + 1 in steps
        try:
            return original_step(self)
        finally:
            on["poisoned"] = False

    def forward(self, x, hidden=None):
        logits, hidden = original_forward(self, x, hidden)
        return (logits * math.nan if on["poisoned"] else logits), hidden

    monkeypatch.setattr(Trainer, "train_step", train_step)
    monkeypatch.setattr(CharRNN, "forward", forward)


def test_a_run_read_a_step_late_recovers_from_bad_steps(tmp_path, corpus_file, make_model_config, make_train_config,
                                                        monkeypatch):
    """Bad steps 6-7, then 9-12 (four in a row, one fewer than the limit), read a step late: the run
    goes on to its last step with finite weights, and each evaluation logs its own step's loss
    (step 8's is finite, though step 7's, a step late, is not)."""
    from chargen import train
    from chargen.modelfile.checkpoint import read_checkpoint

    lagged_and_poisoned(monkeypatch, {6, 7, 9, 10, 11, 12})
    result = train(corpus_file, make_model_config(), make_train_config(max_steps=16, eval_every=4),
                   out=tmp_path / "run", progress=False)
    assert result.steps == 16 and result.stop_reason == "max_steps"
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.isfinite(w).all() for w in last["model"].values())
    assert math.isfinite(result.best_val_loss)
    logged = {r["step"]: r["train_loss"] for r in result.history}
    assert sorted(logged) == [4, 8, 12, 16]
    assert all(math.isfinite(logged[k]) for k in (4, 8, 16)) and not math.isfinite(logged[12])


def test_a_run_read_a_step_late_stops_at_the_limit_with_the_smallest_rate_it_tried(
        tmp_path, corpus_file, make_model_config, make_train_config, monkeypatch):
    """Bad steps without end, read a step late: the run stops after the fifth, whose rate (1/16)
    the message names, with finite weights in last.pt."""
    from chargen import ChargenError, train
    from chargen.modelfile.checkpoint import read_checkpoint
    from chargen.training.loop import MAX_BAD_STEPS

    lagged_and_poisoned(monkeypatch, range(6, 1000))
    with pytest.raises(ChargenError) as err:
        train(corpus_file, make_model_config(), make_train_config(max_steps=40), out=tmp_path / "run",
              progress=False)
    assert f"not finite for {MAX_BAD_STEPS} steps in a row at step {5 + MAX_BAD_STEPS}" in err.value.message
    assert f"1/{2 ** (MAX_BAD_STEPS - 1)} of the learning rate" in err.value.message
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["step"] == 5 + MAX_BAD_STEPS
    assert all(torch.isfinite(w).all() for w in last["model"].values())


def test_a_run_read_a_step_late_logs_what_a_run_read_at_once_logs(tmp_path, corpus_file, make_model_config,
                                                                  make_train_config, monkeypatch):
    """Same seed, no bad step: the metrics (each evaluation's own step's loss and norm, the
    validation loss) and the final weights are those of a run that reads every step at once."""
    from chargen import train
    from chargen.modelfile.checkpoint import read_checkpoint

    cfg = make_train_config(max_steps=12, eval_every=3)
    at_once = train(corpus_file, make_model_config(), cfg, out=tmp_path / "now", progress=False)
    lagged_and_poisoned(monkeypatch, set())
    late = train(corpus_file, make_model_config(), cfg, out=tmp_path / "late", progress=False)
    keys = ("step", "train_loss", "grad_norm", "val_loss", "lr")
    assert [[r[k] for k in keys] for r in late.history] == [[r[k] for k in keys] for r in at_once.history]
    assert len(late.history) == 4 and len({r["train_loss"] for r in late.history}) == 4
    a, b = read_checkpoint(tmp_path / "now" / "last.pt"), read_checkpoint(tmp_path / "late" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
