"""`chargen sample`, `chargen info` and `chargen eval`: the commands that read a trained model."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
import typer

from ..data.corpus import encode_file_with_unknown
from ..data.text import read_raw, read_text
from ..data.vocab import Vocab, utf8_bytes
from ..device import resolve_device
from ..errors import ChargenError
from ..sample import SampleConfig, Sampler, generate, generate_ids, sample_bytes, sample_texts
from ..sample.sampler import require_bytes, shown_prime
from ..training import TrainConfig, evaluate_carried, evaluate_windows, load_model
from .common import checkpoint_path, console, field_default, finite, table
from .options import CheckpointArg, Device, Json, Quiet, StepDevice
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

    Characters of the prime the model never learned are read as its unknown symbol
    U+FFFD, named in one warning on stderr (not with --quiet). A bytes model's text is
    decoded as UTF-8 as it comes, a byte sequence that is not UTF-8 shown as U+FFFD
    (--raw writes the bytes instead). The file separator U+001C that ends each file of a
    corpus of several is written as it is: terminals show nothing for it, and a script
    can split the output into files on it.
    """
    if raw and (jsonl or interactive):
        raise ChargenError("--raw writes bytes, and --jsonl and --interactive write text", "drop one of them")
    model, vocab, _ = load_model(checkpoint_path(checkpoint, quiet))
    if prime_file is not None:
        if prime:
            raise ChargenError("--prime and --prime-file both give the prime", "pass one of them")
        prime = _read_prime(prime_file, vocab)
    cfg = SampleConfig(length=length, temperature=temp, top_k=top_k, top_p=top_p, prime=prime, seed=seed,
                       num_samples=num_samples, stop=unescape(stop), compile=compile_)
    if raw:
        require_bytes(vocab)
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
    if interactive:
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


def info(checkpoint: CheckpointArg = None, as_json: Json = False) -> None:
    """Show a checkpoint's (or model folder's) configuration, vocabulary, size and validation loss."""
    path = checkpoint_path(checkpoint, as_json)
    model, vocab, ckpt = load_model(path)
    best = ckpt.best_val_loss
    rows = {"checkpoint": str(path), "format_version": ckpt.format_version, "corpus": ckpt.corpus or None,
            "step": ckpt.step, "parameters": model.num_parameters(), "vocab": vocab.kind, "vocab_size": len(vocab),
            "unknown_symbol": vocab.unk,
            "best_val_loss": finite(best), "best_val_bpc": finite(best / math.log(2)),
            "model_config": ckpt.model_config.to_dict(),
            "train_config": None if ckpt.train_config is None else ckpt.train_config.to_dict()}
    if as_json:
        print(json.dumps(rows))
        return
    flat = {k: v for k, v in rows.items() if not k.endswith("_config")}
    flat.update({f"model.{k}": v for k, v in rows["model_config"].items()})
    flat.update({f"train.{k}": v for k, v in (rows["train_config"] or {}).items()})
    console().print(table("chargen checkpoint", flat))


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A .pt file.", show_default=False),
    textfile: Path = typer.Argument(..., help="Text to score: UTF-8, or any file for a bytes model.",
                                    show_default=False),
    split: str = typer.Option("all", help="all, or val: only the validation tail (the checkpoint's val-frac)."),
    window: int = typer.Option(0, help="Also score random windows of this many characters from a zero state."),
    device: Device = "auto",
    as_json: Json = False,
) -> None:
    """Loss (nats per character) and bits per character of a model on a text (for a bytes model:
    per byte).

    Characters the model never learned are read as its unknown symbol U+FFFD, named in
    one warning on stderr."""
    if split not in ("all", "val"):
        raise ChargenError(f"unknown split {split!r}", "use --split all or --split val")
    if window < 0:
        raise ChargenError(f"window must be 0 (off) or positive, got {window}", "try --window 256")
    model, vocab, ckpt = load_model(checkpoint)
    if split == "val":
        stored = ckpt.train_config or TrainConfig()  # a weights-only file: the default split
        part = (stored.val_frac, stored.val_chars)
    else:
        part = (None, 0)
    ids, unknown = encode_file_with_unknown(textfile, vocab, *part)
    warn_unknown_chars(unknown)
    dev = resolve_device(device)
    model.to(dev)
    carried = evaluate_carried(model, ids, dev)
    rows = {"text": str(textfile), "split": split, "chars": carried.chars,
            "loss": round(carried.loss, 4), "bpc": round(carried.bpc, 4)}
    if window:
        windows = evaluate_windows(model, ids, dev, window=window)
        rows.update({f"loss_window{window}": round(windows.loss, 4), f"bpc_window{window}": round(windows.bpc, 4)})
    if as_json:
        print(json.dumps(rows))
    else:
        console().print(table("Evaluation", rows))
