"""Reading a step's figures a step late (what the trainer does on a GPU, so that the host never
waits for the step it has just queued), checked on the CPU by setting the lag by hand.

The update and the state restart of a bad step are decided on the device; only the host's
counting of bad steps, and so the halving of the learning rate, waits for the figures.
"""
from __future__ import annotations

import math

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
