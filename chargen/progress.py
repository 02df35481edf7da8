"""Progress bars on stderr (tqdm): preparing a corpus in MB, training in steps or seconds,
and writing a message above a bar without breaking it.

`enabled=None` shows a bar only on a terminal, so logs and pipes get none. The bars show
figures they are handed; they decide nothing about the work.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm


def write_above(text: str) -> None:
    """Write `text` and a newline to stderr; a bar showing there is cleared first and redrawn below it."""
    tqdm.write(text, file=sys.stderr)


class PrepareBar:
    """A tqdm bar in MB over the passes of preparing a corpus; silent on a cache hit.

    `size` gives the bytes the passes will report (asked at the first update, so a cache
    hit costs nothing); without it, two passes over the file at `path`."""

    bar: tqdm | None  # made on the first update, when the size is known

    def __init__(self, path: str | Path, enabled: bool | None, size: Callable[[], int] | None = None) -> None:
        self.path, self.enabled, self.bar, self.size = Path(path), enabled, None, size

    def __enter__(self) -> PrepareBar:
        return self

    def update(self, nbytes: int) -> None:
        if self.bar is None:
            total = self.size() if self.size is not None else 2 * self.path.stat().st_size
            self.bar = tqdm(total=total / 1e6, unit="MB", unit_scale=False, desc=f"preparing {self.path.name}",
                            disable=None if self.enabled is None else not self.enabled, leave=False,
                            dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} MB [{elapsed}, {rate_fmt}]")
        self.bar.update(nbytes / 1e6)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


class TrainBar:
    """A tqdm bar on stderr over steps (with --max-steps) or seconds (with only --max-time)."""

    def __init__(self, max_steps: int, max_time: float, step: int, elapsed: float, enabled: bool | None) -> None:
        self.by_steps = bool(max_steps)
        total = max_steps if self.by_steps else max_time
        self.val = "-"
        self.bar = tqdm(total=total, initial=step if self.by_steps else int(elapsed),
                        unit="step" if self.by_steps else "s", disable=None if enabled is None else not enabled,
                        dynamic_ncols=True, leave=False,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]")
        self.last_refresh = 0.0

    def update(self, step: int, elapsed: float, loss: float, norm: float, speed: float) -> None:
        now = time.monotonic()
        if now - self.last_refresh < 0.2:  # formatting the bar every step would cost more than a step
            return
        self.last_refresh = now
        self.bar.n = step if self.by_steps else min(elapsed, self.bar.total)
        self.bar.set_postfix_str(f"step {step} loss {loss:.3f} val {self.val} |g| {norm:.2f} "
                                 f"{speed / 1000:.1f}k char/s", refresh=True)

    def note(self, text: str) -> None:
        """A line above the bar (a change of thread count); nothing when the bar is off."""
        if not self.bar.disable:
            self.bar.write(text, file=sys.stderr)

    def show_eval(self, record: dict) -> None:
        if record["val_loss"] is not None:
            self.val = f"{record['val_loss']:.3f}"

    def close(self) -> None:
        self.bar.close()
