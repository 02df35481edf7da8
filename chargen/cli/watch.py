"""Watching `chargen train` learn: each evaluation's sample on stderr, above the progress bar.

The library draws the sample and hands over the metrics record (train's `on_eval`); this
module only renders it. Plain text, no markup: a sample may hold any character of the corpus.
"""
from __future__ import annotations

from ..data.text import escape_controls
from ..progress import write_above


def show_sample(record: dict) -> None:
    """Write an evaluation record's sample, under a line naming its step and validation loss;
    nothing for a record without one (--sample-chars 0)."""
    if "sample" not in record:
        return
    val = record.get("val_loss")
    loss = f"  val {val:.3f} nats/char ({record['val_bpc']:.3f} bpc)" if val is not None else ""
    write_above(f"step {record['step']}{loss}  sample:\n{sample_lines(record['sample'])}")


def sample_lines(text: str) -> str:
    """`text` indented two spaces a line, with control characters other than newline and tab
    written as escapes (a corpus's escape sequence or carriage return would garble the terminal)."""
    return "\n".join("  " + line for line in escape_controls(text).split("\n"))
