"""Samples written out, one function per kind of output: a text streamed as it is drawn, several
texts (headed, or as JSON lines), a bytes model's raw bytes, and records as their corpus holds
them; and the training records that `unique` sampling leaves out. Each writes to a file object
it is given (sys.stdout for the CLI) and never closes it."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import BinaryIO, TextIO
from collections.abc import Iterator

import torch

from ..data import Vocab, read_records
from ..data.vocab import utf8_bytes
from ..errors import ChargenError
from ..model import CharRNN
from .draw import SampleConfig
from .records import RecordSample
from .sampler import generate, generate_ids, require_bytes, sample_bytes, sample_texts, shown_prime, stop_after


def write_samples(model: CharRNN, vocab: Vocab, cfg: SampleConfig, out: TextIO, device: torch.device | str = "cpu",
                  jsonl: bool = False) -> None:
    """cfg.num_samples samples on `out`: one alone streamed as it is drawn (stream_text); several each
    after a "----- sample N -----" line, a blank line between; with `jsonl`, one {"sample", "text"}
    object a line. A bytes model's text is decoded as UTF-8 as it comes."""
    if cfg.num_samples == 1 and not jsonl:
        stream_text(shown_prime(vocab, cfg.prime), generate(model, vocab, cfg, device), out)
        return
    for i, text in enumerate(sample_texts(model, vocab, cfg, device)):
        if jsonl:
            out.write(json.dumps({"sample": i + 1, "text": text}, ensure_ascii=False) + "\n")
        else:
            out.write(f"{'' if i == 0 else chr(10)}----- sample {i + 1} -----\n{text}\n")
    out.flush()


def write_raw(model: CharRNN, vocab: Vocab, cfg: SampleConfig, out: BinaryIO,
              device: torch.device | str = "cpu") -> None:
    """A bytes model's samples on `out` exactly as drawn (not decoded): one alone streamed byte by byte
    with no final newline; several each after a "----- sample N -----" line. ChargenError for a
    chars model."""
    require_bytes(vocab)
    if cfg.num_samples == 1:
        stream_bytes(utf8_bytes(cfg.prime), generate_ids(model, vocab, cfg, device), utf8_bytes(cfg.stop), out)
        return
    for i, sample in enumerate(sample_bytes(model, vocab, cfg, device)):
        out.write(f"{'' if i == 0 else chr(10)}----- sample {i + 1} -----\n".encode() + sample + b"\n")
    out.flush()


def write_records(drawn: RecordSample, mode: str, out: TextIO, jsonl: bool = False) -> None:
    """Records on `out` as a corpus of records `mode` holds them (lines: one a line; paragraphs: a blank
    line between; jsonl:FIELD: {FIELD: text} a line), or with `jsonl` as {"sample", "text", "ended"} lines."""
    for i, (text, ended) in enumerate(zip(drawn.records, drawn.ended)):
        if jsonl:
            line = json.dumps({"sample": i + 1, "text": text, "ended": ended}, ensure_ascii=False)
        elif mode.startswith("jsonl:"):
            line = json.dumps({mode.split(":", 1)[1]: text}, ensure_ascii=False)
        else:
            line = text if mode == "lines" or i == 0 else "\n" + text  # paragraphs: a blank line between
        out.write(line + "\n")
    out.flush()


def training_records(corpus: str | os.PathLike, mode: str) -> set[str]:
    """The records of the corpus a records model was trained on (its checkpoint's train_config.corpus
    and .records), for sample_records' `exclude`. ChargenError when the model names no corpus (an
    exported folder) or the file is gone."""
    if not corpus:
        raise ChargenError("this model does not name the corpus it was trained on (an exported folder leaves "
                           "out the trainer's paths)", "use --unique with the run's best.pt where it was trained, "
                                                       "or sample without --unique")
    if not Path(corpus).is_file():
        raise ChargenError(f"--unique reads the training corpus, which is gone: {corpus}",
                           "put the file back at that path, or sample without --unique")
    return set(read_records(corpus, mode).records)


def stream_text(prime: str, pieces: Iterator[str], out: TextIO) -> None:
    """Write the prime and then each piece of text as it comes, flushing at each newline (at
    least every 0.05 s), and a final newline. Characters are written as they are: the file
    separator U+001C too, so that a script can split a sample into files on it."""
    out.write(prime)
    last_flush = time.monotonic()
    for ch in pieces:
        out.write(ch)
        now = time.monotonic()
        if ch == "\n" or now - last_flush > 0.05:  # let a reader see the text appear
            out.flush()
            last_flush = now
    out.write("\n")
    out.flush()


def stream_bytes(prime: bytes, ids: Iterator, stop: bytes, out: BinaryIO) -> None:
    """Write the prime and then the byte of each drawn id as it comes, unchanged (a bytes model's
    output exactly as drawn, any bytes at all), ending right after the first `stop`; no final newline."""
    out.write(prime)
    for byte in stop_after((bytes([int(nxt)]) for nxt in ids), stop):
        out.write(byte)
        if byte == b"\n":
            out.flush()
    out.flush()
