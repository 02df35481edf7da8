"""`chargen sample`, `chargen info` and `chargen eval`: the commands that read a trained model."""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import torch
import typer

from ..data.text import read_model_text
from ..data.vocab import Vocab
from ..device import resolve_device
from ..errors import ChargenError
from ..sample import RecordSample, SampleConfig, Sampler, sample_records
from ..sample.output import training_records, write_raw, write_records, write_samples
from ..sample.sampler import check_text, require_bytes
from ..modelfile import Checkpoint, load_model
from ..training.score import score_text
from ..threads import Threads
from ..study.surprise_page import surprise_page
from .common import checkpoint_path, console, field_default, finite, stdout_errors, table
from .options import CheckpointArg, Device, Exclude, Include, Json, Quiet, StepDevice
from .terminal import interact, unescape, warn_unknown, warn_unknown_chars

SC = SampleConfig  # the flags' defaults come from the config dataclass


def sample(
    checkpoint: CheckpointArg = None,
    temp: float = typer.Option(field_default(SC, "temperature"), "--temp", "--temperature",
                               help="Softmax temperature; 0 = always the likeliest character."),
    length: int = typer.Option(field_default(SC, "length"),
                               help="Characters (for a bytes model: bytes) to generate per sample."),
    prime: str = typer.Option("", help="Text to warm the state on (a bytes model reads its UTF-8 bytes); "
                                       "echoed as the start of the output."),
    prime_file: Optional[Path] = typer.Option(None, help="File to use as --prime, read exactly as stored "
                                                         "(for long primes): UTF-8, or any bytes for a bytes model.",
                                              show_default=False),
    stop: str = typer.Option("", help="End a sample right after this string (\\n, \\t and \\xHH allowed: "
                                      "\\x1c ends it with the first file of a corpus of several)."),
    top_k: int = typer.Option(field_default(SC, "top_k"), help="Draw only from the k likeliest; 0 = off."),
    top_p: float = typer.Option(field_default(SC, "top_p"), help="Nucleus mass to draw from; 1 = off."),
    seed: int = typer.Option(None, help="Seed for reproducible text (default: random)."),
    num_samples: int = typer.Option(field_default(SC, "num_samples"), help="Independent samples."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per sample per line."),
    unique: bool = typer.Option(False, "--unique", help="Records models: leave out records found in the training "
                                                        "corpus (and repeats), drawing more to make up the number."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Type primes, get continuations."),
    raw: bool = typer.Option(False, "--raw", help="A bytes model: write the drawn bytes to stdout exactly as drawn "
                                                  "(not decoded as UTF-8; no final newline)."),
    device: StepDevice = "auto",
    threads: int = typer.Option(0, help="CPU threads; 0 = 1 for one stream, else follow the machine, adapting "
                                        "to its load."),
    quiet: Quiet = False,
    compile_: bool = typer.Option(False, "--compile",
                                  help="CPU: compile the sampling loop with torch.compile (needs a C++ compiler; "
                                       "20-30 s the first time per model shape, a few seconds to load after): "
                                       "less time per character, for very long samples."),
) -> None:
    """Generate text from a trained model; the text alone goes to stdout as it is made.

    A model trained with --records generates whole records instead: --num-samples of them, each
    ending where the model ends it (or at --length), written as its corpus holds them (one per
    line, paragraphs apart, or JSON lines with its field). --prime begins every record.
    Characters of the prime the model never learned are read as its unknown symbol
    U+FFFD, named in one warning on stderr (not with --quiet). A bytes model's text is
    decoded as UTF-8 as it comes, a byte sequence that is not UTF-8 shown as U+FFFD
    (--raw writes the bytes instead). The file separator U+001C that ends each file of a
    corpus of several is written as it is: terminals show nothing for it, and a script
    can split the output into files on it.
    """
    if sys.stdout is None:  # started with stdout closed (>&-): the text would go nowhere
        raise ChargenError("stdout is closed, and the text goes there", "redirect it instead, e.g. > sample.txt")
    if raw and (jsonl or interactive or unique):
        raise ChargenError("--raw writes bytes, and --jsonl, --interactive and --unique write text", "drop one of them")
    model, vocab, ckpt = load_model(checkpoint_path(checkpoint, quiet))
    prime = _prime(prime, prime_file, vocab)
    cfg = SampleConfig(length=length, temperature=temp, top_k=top_k, top_p=top_p, prime=prime, seed=seed,
                       num_samples=num_samples, stop=unescape(stop, vocab.kind == "bytes"), compile=compile_,
                       threads=threads)
    if raw:
        require_bytes(vocab)
    mode = _records_mode(ckpt, unique, interactive)
    if not quiet:
        warn_unknown(vocab, prime)
    dev = _sampling_device(device, compile_, quiet)
    with stdout_errors():  # `> /dev/full`: one line and exit 1
        if mode:
            known = training_records(ckpt.run_state.corpus, mode) if unique else None
            _write_records(sample_records(model, vocab, cfg, dev, exclude=known), num_samples, mode, jsonl, unique,
                           quiet)
        elif interactive:
            interact(Sampler(model, vocab, replace(cfg, num_samples=1), dev), sys.stdin)
        elif raw:
            write_raw(model, vocab, cfg, sys.stdout.buffer, dev)
        else:
            write_samples(model, vocab, cfg, sys.stdout, dev, jsonl)


def _prime(prime: str, prime_file: Optional[Path], vocab: Vocab) -> str:
    """--prime, or the text of --prime-file as the model reads it (read_model_text); checked for bytes
    that are not UTF-8 for a chars model."""
    if prime_file is not None:
        if prime:
            raise ChargenError("--prime and --prime-file both give the prime", "pass one of them")
        prime = read_model_text(prime_file, vocab.kind, what="prime file")
    check_text(vocab, prime, "--prime")
    return prime


def _sampling_device(device: str, compile_: bool, quiet: bool) -> torch.device:
    """The device to sample on, and a word on what --compile does."""
    dev = resolve_device(device, mps=False)
    if compile_ and dev.type != "cpu":
        sys.stderr.write("warning: --compile has no effect on a GPU, which replays the sampling loop "
                         "as a CUDA graph\n")
    elif compile_ and not quiet:
        sys.stderr.write("compiling the sampling loop (20-30 s the first time for this model shape, then cached)\n")
    return dev


def _write_records(drawn: RecordSample, wanted: int, mode: str, jsonl: bool, unique: bool, quiet: bool) -> None:
    """The records on stdout, then on stderr what --unique dropped and how many records are empty."""
    write_records(drawn, mode, sys.stdout, jsonl)
    if unique and not quiet:
        report_unique(drawn, wanted)
    if drawn.empty and not quiet:
        verb = "are" if drawn.empty > 1 else "is"
        sys.stderr.write(f"note: {drawn.empty} of the {len(drawn.records)} records {verb} empty (the model "
                         "drew the end of the record first)\n")


def _records_mode(ckpt: Checkpoint, unique: bool, interactive: bool) -> str:
    """The records mode the model was trained with ("" for a stream), if the options suit it."""
    mode = ckpt.train_config.records if ckpt.train_config else ""
    if unique and not mode:
        raise ChargenError("--unique needs a model trained on records",
                           "train one with --records lines, paragraphs or jsonl:FIELD")
    if interactive and mode:
        raise ChargenError("--interactive continues a stream of text, and this model generates whole records",
                           "drop --interactive; --prime begins every record")
    return mode


def report_unique(drawn: RecordSample, wanted: int) -> None:
    """One stderr line on what --unique dropped, and a warning when it could not find enough."""
    sys.stderr.write(f"--unique dropped {drawn.known + drawn.repeats} of {drawn.drawn} records drawn: {drawn.known} "
                     f"in the training corpus, {drawn.repeats} repeats\n")
    if len(drawn.records) < wanted:
        sys.stderr.write(f"warning: only {len(drawn.records)} of {wanted} records are new after {drawn.drawn} were "
                         "drawn (a model that has learned its corpus by heart repeats it; try a higher --temp)\n")


def info(checkpoint: CheckpointArg = None, as_json: Json = False) -> None:
    """Show a checkpoint's (or model folder's) configuration, vocabulary, size and validation loss."""
    path = checkpoint_path(checkpoint, as_json)
    model, vocab, ckpt = load_model(path)
    best = ckpt.best_val_loss
    rows: dict[str, Any]
    rows = {"checkpoint": str(path), "format_version": ckpt.format_version, "corpus": ckpt.corpus or None,
            "step": ckpt.step, "parameters": model.num_parameters(), "vocab": vocab.kind, "vocab_size": len(vocab),
            "unknown_symbol": vocab.unk,
            "best_val_loss": finite(best), "best_val_bpc": finite(best / math.log(2)),
            "fine_tuned_from": " <- ".join(f"{e['name']} (sha256 {e['sha256'][:12]})" for e in ckpt.lineage) or None,
            "credits": ckpt.credits or None,
            "model_config": ckpt.model_config.to_dict(),
            "train_config": None if ckpt.train_config is None else ckpt.train_config.to_dict()}
    if as_json:
        with stdout_errors():
            print(json.dumps(rows))
        return
    flat = {k: v for k, v in rows.items() if not k.endswith("_config")}
    flat.update({f"model.{k}": v for k, v in rows["model_config"].items()})
    flat.update({f"train.{k}": v for k, v in (rows["train_config"] or {}).items()})
    console().print(table("chargen checkpoint", flat))


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A .pt file or an exported model folder.", show_default=False),
    textfile: list[Path] = typer.Argument(..., help="Text to score: a UTF-8 file (any file for a bytes model), or "
                                                    "the files, folders and patterns a run read, as train takes them.",
                                          show_default=False),
    include: Include = None,
    exclude: Exclude = None,
    split: str = typer.Option("all", help="all, or val: only what the run validated on (the checkpoint's "
                                          "val-frac, val-chars and val-files, as training split it)."),
    window: int = typer.Option(0, help="Also score random windows of this many characters from a zero state."),
    html: Optional[Path] = typer.Option(None, help="Also write a page of the text (its first 20,000 characters) "
                                                   "coloured by each character's loss: where the model is surprised."),
    device: Device = "auto",
    threads: int = typer.Option(0, help="CPU threads; 0 = follow the machine, adapting to its load."),
    as_json: Json = False,
) -> None:
    """Loss (nats per character) and bits per character of a model on a text (for a bytes model:
    per byte).

    Given the run's own corpus without --include/--exclude, the run's patterns choose its files.
    Characters the model never learned are read as its unknown symbol U+FFFD, named in
    one warning on stderr."""
    model, _, ckpt = load_model(checkpoint)
    dev = resolve_device(device)
    scored = score_text(model, ckpt, textfile, include or (), exclude or (), split, window, dev,
                        Threads.for_loop(threads, adapt=dev.type == "cpu"))
    warn_unknown_chars(scored.unknown)
    if html is not None:  # the files scored are listed only here: the page must not overwrite one of them
        read = [f.path for f in scored.sources.files()] if scored.sources is not None else []
        page = surprise_page(model, ckpt.vocab, scored.data, dev, html, scored.text, os.fspath(checkpoint),
                             keep=(checkpoint, *read))
        sys.stderr.write(f"wrote {page}\n")
    if as_json:
        with stdout_errors():
            print(json.dumps(scored.to_dict()))
    else:
        console().print(table("Evaluation", scored.to_dict()))
