"""TensorBoard event files for a run (`TrainConfig.tensorboard`): the training figures every
few steps, each evaluation's losses and sample, in `<run>/tensorboard/`.

Written through torch.utils.tensorboard, which needs the optional `tensorboard` package
(`pip install 'chargen[tensorboard]'`). The figures come from the loop; nothing here reads a device.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import ChargenError

BOARD_DIR = "tensorboard"
# Steps between training points: each point is five add_scalar calls (about 0.3 ms on a busy 2-core
# CPU), so their cost stays a small fraction of even a small model's step.
EVERY = 10
FLUSH_S = 10  # seconds between writes to disk, so that a TensorBoard watching the run is at most this late


def require_tensorboard() -> None:
    """Raise ChargenError, naming the extra to install, when the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401 - the import is the check
    except ImportError:
        raise ChargenError("--tensorboard needs the tensorboard package, which is not installed",
                           "pip install 'chargen[tensorboard]', or train without --tensorboard") from None


class Board:
    """The event files of one run, or nothing at all when `enabled` is False (every method then
    returns at once). A run started (or resumed) at `step` adds a new file to the folder, and
    TensorBoard hides what earlier processes logged after `step`: the steps that a crash lost since
    the last save, or a failed start's (at step 0). The steps go on from the checkpoint without
    repeats. Use as a context manager: it closes on any exit."""

    def __init__(self, run_dir: Path, enabled: bool, step: int = 0) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / BOARD_DIR), purge_step=step + 1, flush_secs=FLUSH_S)

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log_step(self, step: int, lr: float, chars_per_s: float, read_step: int, loss: float, norm: float) -> None:
        """Step `step`'s learning rate and the throughput so far; the loss (nats per character) and
        pre-clip gradient norm of step `read_step`, the last step whose figures the host has read
        (on a GPU the one before `step`: the loop reads them a step late, see Trainer.lag)."""
        if self.writer is None:
            return
        self.writer.add_scalar("train/lr", lr, step)
        self.writer.add_scalar("train/chars_per_s", chars_per_s, step)
        if read_step > 0 and math.isfinite(loss):
            self.writer.add_scalar("train/loss", loss, read_step)
            self.writer.add_scalar("train/bpc", loss / math.log(2), read_step)
            self.writer.add_scalar("train/grad_norm", norm, read_step)

    def log_eval(self, record: dict) -> None:
        """An evaluation's metrics record: its validation loss and bpc, and its sample as text."""
        if self.writer is None:
            return
        step = record["step"]
        if record["val_loss"] is not None and math.isfinite(record["val_loss"]):
            self.writer.add_scalar("val/loss", record["val_loss"], step)
            self.writer.add_scalar("val/bpc", record["val_bpc"], step)
        if "sample" in record:
            # TensorBoard renders text as Markdown: indented four spaces, the sample is shown verbatim.
            self.writer.add_text("sample", "\n".join("    " + line for line in record["sample"].split("\n")), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
