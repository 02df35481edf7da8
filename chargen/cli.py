"""The `chargen` command line: parses options, calls the library, renders results.

The only module that imports typer and rich. Generated text alone goes to stdout;
bars, tables and messages go to stderr. Exit codes: 0 ok, 1 a ChargenError (one
line with a hint), 2 bad usage, 130 interrupted.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.console import Console
from rich.table import Table

from .checkpoint import load_model
from .config import TrainConfig
from .device import resolve_device
from .errors import ChargenError
from .evaluate import evaluate_carried, evaluate_windows
from .model import ModelConfig
from .prepare import encode_file
from .recipes import default_configs, default_help
from .runs import newest_checkpoint
from .sample import SampleConfig, Sampler, generate, sample_texts
from .terminal import interact, stream, unescape, warn_unknown
from .train import train as run_training

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train character-level RNN / LSTM / GRU models on any text file and sample from them.")


def _default(cls, name: str):
    return {f.name: f.default for f in fields(cls)}[name]


def _err() -> Console:
    return Console(stderr=True, highlight=False)


class Interrupted(Exception):
    """Raised inside a command to leave with exit code 130."""


def _guard(fn):
    """Turn library errors into one-line messages and exit codes at the CLI boundary."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ChargenError as e:
            hint = f" (hint: {e.hint})" if e.hint else ""
            sys.stderr.write(f"error: {e.message}{hint}\n")
            raise typer.Exit(1) from None
        except (KeyboardInterrupt, Interrupted):
            sys.stderr.write("\ninterrupted\n")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
    return wrapper


def _silence_stdout() -> None:
    # The reader of a pipe went away (`| head`): point stdout at /dev/null so the
    # interpreter's final flush does not complain about it.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@app.command()
@_guard
def train(
    ctx: typer.Context,
    corpus: Path = typer.Argument(..., help="UTF-8 text file to learn from.", show_default=False),
    cell: Optional[str] = typer.Option(None, help=f"Recurrent cell: rnn, lstm or gru. {default_help('cell')}"),
    num_layers: Optional[int] = typer.Option(None, "--num-layers", "--layers", help=default_help('num_layers')),
    hidden_size: Optional[int] = typer.Option(None, help=default_help('hidden_size')),
    embedding_dim: Optional[int] = typer.Option(None, help=default_help('embedding_dim')),
    dropout: Optional[float] = typer.Option(
        None, help="(default: on a CPU 0 when the time or step budget allows at most 6 passes over the corpus, "
                   "else 0.1; 0.5 on a GPU)"),
    impl: str = typer.Option(_default(ModelConfig, "impl"),
                             help="torch (fast), or reference: the cell equations step by step (slow, for study)."),
    batch_size: Optional[int] = typer.Option(None, help=f"Parallel streams. {default_help('batch_size')}"),
    seq_len: Optional[int] = typer.Option(None, help=f"Characters per BPTT window. {default_help('seq_len')}"),
    lr: Optional[float] = typer.Option(None, help=f"Peak learning rate. {default_help('lr')}"),
    weight_decay: Optional[float] = typer.Option(None, help=default_help('weight_decay')),
    warmup_steps: int = typer.Option(_default(TrainConfig, "warmup_steps")),
    min_lr_frac: float = typer.Option(_default(TrainConfig, "min_lr_frac"), help="Final lr as a fraction of --lr."),
    grad_clip: float = typer.Option(_default(TrainConfig, "grad_clip"), help="Max global gradient L2 norm."),
    max_steps: int = typer.Option(_default(TrainConfig, "max_steps"), help="0 = no step limit."),
    max_time: float = typer.Option(_default(TrainConfig, "max_time"), help="Seconds; 0 = no time limit."),
    patience: int = typer.Option(_default(TrainConfig, "patience"), help="Evaluations without improvement; 0 = off."),
    eval_every: int = typer.Option(_default(TrainConfig, "eval_every"), help="Steps between evaluations."),
    save_every: int = typer.Option(_default(TrainConfig, "save_every"), help="Steps between last.pt saves."),
    val_frac: float = typer.Option(_default(TrainConfig, "val_frac"), help="Validation tail fraction."),
    val_chars: int = typer.Option(_default(TrainConfig, "val_chars"), help="Cap on the validation tail; 0 = none."),
    min_char_count: int = typer.Option(_default(TrainConfig, "min_char_count"),
                                       help="Rarer characters become one unknown symbol."),
    seed: int = typer.Option(_default(TrainConfig, "seed")),
    device: str = typer.Option(_default(TrainConfig, "device"), help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(_default(TrainConfig, "precision"), help="auto, fp32, bf16 or fp16 (autocast; fp16 on CUDA only)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default checkpoints/<corpus>-<cell>)."),
    resume: bool = typer.Option(False, help="Continue the run in the run folder exactly."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Train a model on CORPUS; writes best.pt, last.pt and metrics.jsonl to the run folder.

    Settings left out come from the device's recipe (GRU 2x256 on a CPU, LSTM 3x1024 on a GPU).
    """
    if resume:
        _warn_ignored_on_resume(ctx)
    # The corpus's size in bytes stands for its characters (exact for ASCII text): it only
    # sets the CPU recipe's dropout, from the passes over it that the budget allows.
    size = corpus.stat().st_size if corpus.is_file() else None
    model_config, config = default_configs(
        resolve_device(device), corpus_chars=size, cell=cell, num_layers=num_layers, hidden_size=hidden_size,
        embedding_dim=embedding_dim, dropout=dropout, impl=impl, batch_size=batch_size, seq_len=seq_len, lr=lr,
        weight_decay=weight_decay, warmup_steps=warmup_steps, min_lr_frac=min_lr_frac, grad_clip=grad_clip,
        max_steps=max_steps, max_time=max_time, patience=patience, eval_every=eval_every, save_every=save_every,
        val_frac=val_frac, val_chars=val_chars, min_char_count=min_char_count, seed=seed, device=device,
        precision=precision)
    result = run_training(corpus, model_config, config, out=out, resume=resume, progress=False if quiet or as_json else None)
    if not result.is_main:  # another rank of a torchrun: rank 0 reports
        return
    summary = {"run_dir": str(result.run_dir), "best_checkpoint": str(result.run_dir / "best.pt"), "steps": result.steps, "stop_reason": result.stop_reason,
               "best_val_loss": _finite(result.best_val_loss), "best_val_bpc": _finite(result.best_val_bpc),
               "elapsed_s": round(result.elapsed, 1),
               **({"model": describe_model(result.model_config)} if result.model_config else {}),
               "parameters": result.parameters,
               "chars_per_s": round(result.chars_per_s), "device": result.device,
               "startup_s": round(result.startup_s, 2)}
    if as_json:
        print(json.dumps(summary))
    elif not quiet:
        _err().print(_table("Training summary", summary))
    if result.stop_reason == "interrupted":
        raise Interrupted


# `chargen train` options that a resume still takes from the command line.
_RESUME_TAKES = {"corpus", "device", "precision", "out", "resume", "quiet", "as_json"}


def _warn_ignored_on_resume(ctx: typer.Context) -> None:
    """Name the settings given on the command line that a resume ignores (it continues with the run's own)."""
    def typed(name: str) -> bool:  # given by the user, not a default (click's ParameterSource, by name)
        return getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")

    given = [p for p in ctx.command.params if p.name not in _RESUME_TAKES and typed(p.name)]
    if given:
        names = ", ".join(max(p.opts, key=len) for p in given)
        sys.stderr.write(f"warning: --resume continues with the run's own settings; ignored: {names} "
                         "(start a new run to change them)\n")


def describe_model(config: ModelConfig) -> str:
    """One line naming what the recipe chose: 'gru 2x256, embedding 64, dropout 0.0'."""
    impl = "" if config.impl == "torch" else f", {config.impl} cells"
    return (f"{config.cell} {config.num_layers}x{config.hidden_size}, embedding {config.embedding_dim}, "
            f"dropout {config.dropout}{impl}")


def _finite(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def _table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    return table


def _checkpoint_path(checkpoint: Optional[Path], quiet: bool) -> Path:
    if checkpoint is not None:
        return checkpoint
    found = newest_checkpoint("checkpoints")
    if not quiet:
        sys.stderr.write(f"using {found}\n")
    return found


@app.command()
@_guard
def sample(
    checkpoint: Optional[Path] = typer.Argument(None, help="A .pt file (default: newest checkpoints/**/best.pt).",
                                                show_default=False),
    temp: float = typer.Option(_default(SampleConfig, "temperature"), "--temp", "--temperature",
                               help="Softmax temperature; 0 = always the likeliest character."),
    length: int = typer.Option(_default(SampleConfig, "length"), help="Characters to generate per sample."),
    prime: str = typer.Option("", help="Text to warm the state on; echoed as the start of the output."),
    stop: str = typer.Option("", help="End a sample right after this string."),
    top_k: int = typer.Option(_default(SampleConfig, "top_k"), help="Draw only from the k likeliest; 0 = off."),
    top_p: float = typer.Option(_default(SampleConfig, "top_p"), help="Nucleus mass to draw from; 1 = off."),
    seed: Optional[int] = typer.Option(None, help="Seed for reproducible text (default: random)."),
    num_samples: int = typer.Option(_default(SampleConfig, "num_samples"), help="Independent samples."),
    jsonl: bool = typer.Option(False, "--jsonl", help="One JSON object per sample per line."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Type primes, get continuations."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda, cuda:N or mps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not say which checkpoint is used."),
    compile_: bool = typer.Option(False, "--compile",
                                  help="CPU: compile the sampling loop with torch.compile (needs a C++ compiler; "
                                       "5-30 s the first time, then cached): about 1.5x faster for long samples."),
) -> None:
    """Generate text from a trained model; the text alone goes to stdout as it is made."""
    cfg = SampleConfig(length=length, temperature=temp, top_k=top_k, top_p=top_p, prime=prime, seed=seed,
                       num_samples=num_samples, stop=unescape(stop), compile=compile_)
    model, vocab, _ = load_model(_checkpoint_path(checkpoint, quiet))
    warn_unknown(vocab, prime)
    dev = resolve_device(device)
    if dev.type == "cpu" and num_samples == 1:
        torch.set_num_threads(min(2, torch.get_num_threads()))  # tiny steps: more threads only add hand-offs
    if compile_ and (dev.type != "cpu" or interactive):
        sys.stderr.write("warning: --compile has no effect here: it compiles the CPU's chunked sampling loop "
                         "(a GPU replays a CUDA graph; -i draws one step at a time)\n")
    elif compile_ and not quiet:
        sys.stderr.write("compiling the sampling loop (5-30 s the first time for this model shape, then cached)\n")
    if interactive:
        interact(Sampler(model, vocab, replace(cfg, num_samples=1), dev), sys.stdin)
    elif num_samples == 1 and not jsonl:
        stream(prime, generate(model, vocab, cfg, dev))
    else:
        for i, text in enumerate(sample_texts(model, vocab, cfg, dev)):
            if jsonl:
                sys.stdout.write(json.dumps({"sample": i + 1, "text": text}, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(f"{'' if i == 0 else chr(10)}----- sample {i + 1} -----\n{text}\n")
        sys.stdout.flush()


@app.command()
@_guard
def info(
    checkpoint: Optional[Path] = typer.Argument(None, help="A .pt file (default: newest best.pt).",
                                                show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON on stdout."),
) -> None:
    """Show a checkpoint's configuration, vocabulary, size and validation loss."""
    path = _checkpoint_path(checkpoint, as_json)
    model, vocab, state = load_model(path)
    best = state.get("best_val_loss", math.inf)
    rows = {"checkpoint": str(path), "format_version": state["format_version"], "step": state.get("step"),
            "parameters": model.num_parameters(), "vocab_size": len(vocab), "unknown_symbol": vocab.unk,
            "best_val_loss": _finite(best), "best_val_bpc": _finite(best / math.log(2)),
            "model_config": state["model_config"], "train_config": state.get("train_config")}
    if as_json:
        print(json.dumps(rows))
        return
    flat = {k: v for k, v in rows.items() if not k.endswith("_config")}
    flat.update({f"model.{k}": v for k, v in rows["model_config"].items()})
    flat.update({f"train.{k}": v for k, v in (rows["train_config"] or {}).items()})
    _err().print(_table("chargen checkpoint", flat))


@app.command("eval")
@_guard
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A .pt file.", show_default=False),
    textfile: Path = typer.Argument(..., help="UTF-8 text to score.", show_default=False),
    split: str = typer.Option("all", help="all, or val: only the validation tail (the checkpoint's val-frac)."),
    window: int = typer.Option(0, help="Also score random windows of this many characters from a zero state."),
    device: str = typer.Option("cpu", help="auto, cpu, cuda, cuda:N or mps."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON on stdout."),
) -> None:
    """Loss (nats per character) and bits per character of a model on a text."""
    if split not in ("all", "val"):
        raise ChargenError(f"unknown split {split!r}", "use --split all or --split val")
    if window < 0:
        raise ChargenError(f"window must be 0 (off) or positive, got {window}", "try --window 256")
    model, vocab, state = load_model(checkpoint)
    stored = state.get("train_config") or {}
    if split == "val":
        ids = encode_file(textfile, vocab, stored.get("val_frac", 0.1), stored.get("val_chars", 0))
    else:
        ids = encode_file(textfile, vocab)
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
        _err().print(_table("Evaluation", rows))


def main() -> None:
    app(prog_name="chargen")


from . import cli_study  # noqa: E402,F401 - registers compare, plot and gradflow on `app`
from . import cli_cells  # noqa: E402,F401 - registers cells on `app`
from . import cli_prepare  # noqa: E402,F401 - registers prepare on `app`
