"""`chargen sample`, `chargen info` and `chargen eval`: the commands that read a trained model."""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import torch
import typer

from ..data import Sources
from ..data.corpus import encode_file_with_unknown
from ..data.records import encode_record_file, read_records
from ..data.text import read_raw, read_text
from ..data.vocab import Vocab, utf8_bytes
from ..device import resolve_device
from ..errors import ChargenError
from ..sample import (RecordSample, SampleConfig, Sampler, generate, generate_ids, sample_bytes, sample_records,
                      sample_texts)
from ..sample.sampler import check_text, require_bytes, shown_prime
from ..study.surprise_page import surprise_page
from ..training import Checkpoint, TrainConfig, evaluate_carried, evaluate_records, evaluate_windows, load_model
from .common import checkpoint_path, console, field_default, finite, stdout_errors, table
from .options import CheckpointArg, Device, Exclude, Include, Json, Quiet, StepDevice
from .terminal import interact, stream, stream_raw, unescape, warn_unknown, warn_unknown_chars

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
    if prime_file is not None:
        if prime:
            raise ChargenError("--prime and --prime-file both give the prime", "pass one of them")
        prime = _read_prime(prime_file, vocab)
    check_text(vocab, prime, "--prime")
    cfg = SampleConfig(length=length, temperature=temp, top_k=top_k, top_p=top_p, prime=prime, seed=seed,
                       num_samples=num_samples, stop=unescape(stop, vocab.kind == "bytes"), compile=compile_)
    if raw:
        require_bytes(vocab)
    mode = _records_mode(ckpt, unique, interactive)
    if not quiet:
        warn_unknown(vocab, prime)
    dev = resolve_device(device, mps=False)
    if dev.type == "cpu" and num_samples == 1:
        torch.set_num_threads(1)  # one stream: tiny steps, where a second thread only adds hand-offs
    if compile_ and dev.type != "cpu":
        sys.stderr.write("warning: --compile has no effect on a GPU, which replays the sampling loop "
                         "as a CUDA graph\n")
    elif compile_ and not quiet:
        sys.stderr.write("compiling the sampling loop (20-30 s the first time for this model shape, then cached)\n")
    with stdout_errors():  # `> /dev/full`: one line and exit 1
        if mode:
            known = set(read_records(_training_corpus(ckpt), mode).records) if unique else None
            drawn = sample_records(model, vocab, cfg, dev, exclude=known)
            write_records(drawn, mode, jsonl)
            if unique and not quiet:
                report_unique(drawn, num_samples)
            if drawn.empty and not quiet:
                verb = "are" if drawn.empty > 1 else "is"
                sys.stderr.write(f"note: {drawn.empty} of the {len(drawn.records)} records {verb} empty (the model "
                                 "drew the end of the record first)\n")
        elif interactive:
            interact(Sampler(model, vocab, replace(cfg, num_samples=1), dev), sys.stdin)
        elif raw:
            _write_raw(model, vocab, cfg, dev)
        elif num_samples == 1 and not jsonl:
            stream(shown_prime(vocab, prime), generate(model, vocab, cfg, dev))
        else:
            for i, text in enumerate(sample_texts(model, vocab, cfg, dev)):
                if jsonl:
                    sys.stdout.write(json.dumps({"sample": i + 1, "text": text}, ensure_ascii=False) + "\n")
                else:
                    sys.stdout.write(f"{'' if i == 0 else chr(10)}----- sample {i + 1} -----\n{text}\n")
            sys.stdout.flush()


def _read_prime(path: Path, vocab: Vocab) -> str:
    """A --prime-file: UTF-8 text for a chars model; any bytes for a bytes model, carried in the string
    as Python's surrogateescape does (a byte that is not UTF-8 as a lone surrogate) so that
    vocab.encode gives them back exactly."""
    if vocab.kind == "chars":
        return read_text(path, what="prime file")
    return read_raw(path, what="prime file").decode("utf-8", "surrogateescape")


def _write_raw(model, vocab: Vocab, cfg: SampleConfig, dev) -> None:
    """--raw: one sample streamed byte by byte, or several, each after a header line."""
    out = sys.stdout.buffer
    if cfg.num_samples == 1:
        stream_raw(utf8_bytes(cfg.prime), generate_ids(model, vocab, cfg, dev), utf8_bytes(cfg.stop), out)
        return
    for i, sample in enumerate(sample_bytes(model, vocab, cfg, dev)):
        out.write(f"{'' if i == 0 else chr(10)}----- sample {i + 1} -----\n".encode() + sample + b"\n")
    out.flush()


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


def _training_corpus(ckpt: Checkpoint) -> Path:
    """The corpus file a records model was trained on, which --unique reads; ChargenError when it is gone."""
    path = ckpt.train_config.corpus
    if not path:
        raise ChargenError("this model does not name the corpus it was trained on (an exported folder leaves "
                           "out the trainer's paths)", "use --unique with the run's best.pt where it was trained, "
                                                       "or sample without --unique")
    if not Path(path).is_file():
        raise ChargenError(f"--unique reads the training corpus, which is gone: {path}",
                           "put the file back at that path, or sample without --unique")
    return Path(path)


def write_records(drawn: RecordSample, mode: str, jsonl: bool) -> None:
    """The records on stdout as their corpus holds them, or with `jsonl` as {"sample", "text", "ended"} lines."""
    for i, (text, ended) in enumerate(zip(drawn.records, drawn.ended)):
        if jsonl:
            line = json.dumps({"sample": i + 1, "text": text, "ended": ended}, ensure_ascii=False)
        elif mode.startswith("jsonl:"):
            line = json.dumps({mode.split(":", 1)[1]: text}, ensure_ascii=False)
        else:
            line = text if mode == "lines" or i == 0 else "\n" + text  # paragraphs: a blank line between
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


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
    textfile: List[Path] = typer.Argument(..., help="Text to score: a UTF-8 file (any file for a bytes model), or "
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
    as_json: Json = False,
) -> None:
    """Loss (nats per character) and bits per character of a model on a text (for a bytes model:
    per byte).

    Given the run's own corpus without --include/--exclude, the run's patterns choose its files.
    Characters the model never learned are read as its unknown symbol U+FFFD, named in
    one warning on stderr."""
    if split not in ("all", "val"):
        raise ChargenError(f"unknown split {split!r}", "use --split all or --split val")
    if window < 0:
        raise ChargenError(f"window must be 0 (off) or positive, got {window}", "try --window 256")
    model, vocab, ckpt = load_model(checkpoint)
    stored = ckpt.train_config or TrainConfig()  # a weights-only file: the default split, a stream
    part = (stored.val_frac, stored.val_chars, stored.val_files) if split == "val" else (None, 0, 0)
    if stored.records and window:
        raise ChargenError("--window scores windows of a stream, and this model is scored record by record",
                           "drop --window")
    sources = _scored_sources(textfile, include, exclude, stored)
    dev = resolve_device(device)
    model.to(dev)
    if stored.records:
        records, unknown = encode_record_file(_one_record_file(sources), vocab, stored.records,
                                              stored.max_record_chars, *part[:2])
        warn_unknown_chars(unknown)
        scored = evaluate_records(model, records, dev)
    else:
        ids, unknown = encode_file_with_unknown(sources, vocab, *part)
        warn_unknown_chars(unknown)
        scored = evaluate_carried(model, ids, dev)
    rows = {"text": str(sources), "split": split, **({"records": records.count} if stored.records else {}),
            "chars": scored.chars, "loss": round(scored.loss, 4), "bpc": round(scored.bpc, 4)}
    if window:
        windows = evaluate_windows(model, ids, dev, window=window)
        rows.update({f"loss_window{window}": round(windows.loss, 4), f"bpc_window{window}": round(windows.bpc, 4)})
    if html is not None:
        page = surprise_page(model, vocab, records if stored.records else ids, dev, html, str(sources),
                             os.fspath(checkpoint), keep=(checkpoint, *(f.path for f in sources.files())))
        sys.stderr.write(f"wrote {page}\n")
    if as_json:
        with stdout_errors():
            print(json.dumps(rows))
    else:
        console().print(table("Evaluation", rows))


def _scored_sources(paths: list[Path], include: Optional[list[str]], exclude: Optional[list[str]],
                    stored: TrainConfig) -> Sources:
    """The text `chargen eval` scores: the paths given with the patterns given, or, for the run's own
    corpus given without patterns, the run's patterns (the files it read, so --split val is its split)."""
    given = tuple(os.fspath(p) for p in paths)
    if include or exclude or stored.corpus != " ".join(os.path.abspath(p) for p in given):
        return Sources(given, tuple(include or ()), tuple(exclude or ()))
    return Sources(given, stored.include, stored.exclude)


def _one_record_file(sources: Sources) -> str:
    """The one file a records model is scored on; ChargenError for several."""
    files = sources.files()
    if len(files) != 1:
        raise ChargenError(f"a records model scores one file, and {sources} is {len(files)} files",
                           "pass the one records file")
    return files[0].path
