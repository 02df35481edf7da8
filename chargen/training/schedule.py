"""The learning-rate schedule and a resumed run's new budget: pure functions of the settings."""
from __future__ import annotations

import math
from dataclasses import replace

from ..config import TrainConfig
from ..errors import ChargenError
from ..modelfile.state import RunState

NEVER_EXTENDED = RunState()


def lr_at(config: TrainConfig, step: int, elapsed: float, state: RunState = NEVER_EXTENDED) -> float:
    """The learning rate of step `step` (0-based) taken at `elapsed` seconds of training.

    Linear warmup over `warmup_steps`, then cosine decay to `min_lr_frac * lr` at the end of the
    budget. After a resume that extended the budget (`state.extended_at_step` > 0), a new cosine
    runs from that resume point's rate, `extended_from_lr`, down to the same floor at the new end:
    the rate is continuous at the resume point, and a run that had finished (at the floor)
    continues at the floor.
    """
    if state.extended_at_step:
        if config.max_steps:
            progress = (step - state.extended_at_step) / max(1, config.max_steps - state.extended_at_step)
        else:
            progress = (elapsed - state.extended_at_time) / max(1e-9, config.max_time - state.extended_at_time)
        floor = config.min_lr_frac * config.lr
        return floor + (state.extended_from_lr - floor) * _cosine(progress)
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.max_steps:
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    else:
        progress = elapsed / config.max_time
    floor = config.min_lr_frac
    return config.lr * (floor + (1 - floor) * _cosine(progress))


def _cosine(progress: float) -> float:
    """1 at the start of a decay, 0 at its end (progress clamped to [0, 1])."""
    return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def extend_budget(config: TrainConfig, step: int, elapsed: float, more_time: float | None = None,
                  max_steps: int | None = None,
                  state: RunState = NEVER_EXTENDED) -> tuple[TrainConfig, RunState]:
    """`config` with a new budget for a run resumed at `step` after `elapsed` seconds, and the
    run's `state` with the point the schedule now decays from.

    The limits given replace the run's own, and a limit not given is off: `more_time` seconds
    on top of `elapsed` (0 = no time limit), `max_steps` a new total step limit. Past the warmup
    the schedule becomes a new cosine from the rate at this point to the floor at the new end
    (`lr_at`); within the warmup, the warmup goes on and the usual cosine spans the new budget.
    Raises ChargenError for a step limit the run has reached already, or no limit at all.
    """
    if max_steps is not None and 0 < max_steps <= step:
        raise ChargenError(f"the run is at step {step} already, so --max-steps {max_steps} gives it nothing",
                           f"give --max-steps above {step}, or --max-time SECONDS to add time")
    budget = replace(config, max_time=elapsed + more_time if more_time else 0.0, max_steps=max_steps or 0)
    if step == 0 or (step < config.warmup_steps and not state.extended_at_step):
        return budget, state
    return budget, replace(state, extended_at_step=step, extended_at_time=elapsed,
                           extended_from_lr=lr_at(config, step, elapsed, state))
