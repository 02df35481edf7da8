"""`chargen train` and `chargen prepare`: build the configs from the flags and the device's
recipe, call the library, and render its summary."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ..data import Sources, prepare_corpus
from ..data.cache import work_bytes
from ..device import resolve_device
from ..model import ModelConfig
from ..progress import PrepareBar
from ..training import TrainConfig, default_configs
from ..training import train as run_training
from ..training.distributed import world_from_env
from ..training.preview import SAMPLE_TEMPERATURE
from ..training.recipes import default_help, dropout_rule_applies
from ..training.runs import newest_run
from .common import Interrupted, console, field_default, finite, outlives_its_output, table
from .options import VOCAB_HELP, Corpus, Device, Exclude, Include, Json, MinCharCount, Quiet, VocabKind
from .watch import show_sample

TC = TrainConfig  # the flags' defaults come from the config dataclasses


@outlives_its_output  # `chargen train ... | head`: the run goes on to its end and saves
def train(
    ctx: typer.Context,
    corpus: Corpus,
    include: Include = None,
    exclude: Exclude = None,
    init: Optional[str] = typer.Option(
        None, metavar="MODEL", help="Start from a trained model instead of random weights (fine-tune it): a .pt "
                                    "file, an exported model folder, or a shipped model: base, shakespeare. Its "
                                    "shape comes with it; settings left out follow the fine-tuning recipe."),
    vocab: Optional[str] = typer.Option(None, "--vocab", help=VOCAB_HELP + " (default: chars; with --init, the "
                                                                         "model's own)"),
    cell: Optional[str] = typer.Option(None, help=f"Recurrent cell: rnn, lstm or gru. {default_help('cell')}"),
    num_layers: Optional[int] = typer.Option(None, "--num-layers", "--layers", help=default_help('num_layers')),
    hidden_size: Optional[int] = typer.Option(None, help=default_help('hidden_size')),
    embedding_dim: Optional[int] = typer.Option(None, help=default_help('embedding_dim')),
    dropout: Optional[float] = typer.Option(
        None, help="(default: on a CPU 0 when the budget allows at most 6 passes over the corpus, else 0.1: "
                   "passes from --max-steps if set, else from --max-time at the speed measured at the start; "
                   "0.5 on a GPU; 0.1 with --init)"),
    impl: str = typer.Option(field_default(ModelConfig, "impl"),
                             help="torch (fast), or reference: the cell equations step by step (slow, for study)."),
    batch_size: Optional[int] = typer.Option(None, help=f"Parallel streams. {default_help('batch_size')}"),
    seq_len: Optional[int] = typer.Option(None, help=f"Characters per BPTT window. {default_help('seq_len')}"),
    lr: Optional[float] = typer.Option(None, help=f"Peak learning rate. {default_help('lr')}"),
    weight_decay: Optional[float] = typer.Option(None, help=default_help('weight_decay')),
    warmup_steps: Optional[int] = typer.Option(None, help=default_help("warmup_steps")),
    min_lr_frac: float = typer.Option(field_default(TC, "min_lr_frac"), help="Final lr as a fraction of --lr."),
    grad_clip: float = typer.Option(field_default(TC, "grad_clip"), help="Max global gradient L2 norm."),
    max_steps: int = typer.Option(field_default(TC, "max_steps"),
                                  help="0 = no step limit. With --resume: the run's new step limit."),
    max_time: float = typer.Option(field_default(TC, "max_time"),
                                   help="Seconds; 0 = no time limit. With --resume: seconds added to the run."),
    patience: Optional[int] = typer.Option(None, help="Evaluations without improvement; 0 = off. "
                                                      + default_help("patience")),
    eval_every: Optional[int] = typer.Option(None, help="Steps between evaluations. " + default_help("eval_every")),
    save_every: int = typer.Option(field_default(TC, "save_every"), help="Steps between last.pt saves."),
    val_frac: float = typer.Option(field_default(TC, "val_frac"),
                                   help="Validation fraction: of one file, its tail; of several, about this "
                                        "share of the files (the last ones)."),
    val_chars: int = typer.Option(field_default(TC, "val_chars"), help="Cap on the validation tail; 0 = none."),
    val_files: int = typer.Option(field_default(TC, "val_files"),
                                  help="Of several files, validate on the last this many (whole files); "
                                       "0 = about --val-frac of them."),
    min_char_count: MinCharCount = field_default(TC, "min_char_count"),
    records: str = typer.Option(field_default(TC, "records"), metavar="MODE",
                                help="Read CORPUS as separate records, each learned from a zero state up to an "
                                     "end-of-record symbol: lines, paragraphs (separated by blank lines) or "
                                     "jsonl:FIELD (the string FIELD of each JSON line)."),
    max_record_chars: int = typer.Option(field_default(TC, "max_record_chars"),
                                         help="With --records: longer records are left out (and counted)."),
    seed: int = typer.Option(field_default(TC, "seed")),
    threads: int = typer.Option(field_default(TC, "threads"), help="CPU threads; 0 = follow the machine's load."),
    device: Device = field_default(TC, "device"),
    precision: str = typer.Option(field_default(TC, "precision"),
                                  help="auto, fp32, bf16 or fp16 (autocast; fp16 on CUDA only)."),
    sample_chars: int = typer.Option(field_default(TC, "sample_chars"),
                                     help=f"Characters drawn at each evaluation (seeded, temperature "
                                          f"{SAMPLE_TEMPERATURE}), shown on stderr and kept in metrics.jsonl; "
                                          "0 = none."),
    # `\\[` is a literal bracket in the help's rich markup, which would otherwise swallow "[tensorboard]".
    tensorboard: bool = typer.Option(field_default(TC, "tensorboard"), "--tensorboard",
                                     help="Also write TensorBoard event files to <run>/tensorboard/ "
                                          "(needs: pip install 'chargen\\[tensorboard]')."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default checkpoints/<corpus>-<cell>)."),
    resume: bool = typer.Option(False, help="Continue the run in --out, else the newest run of CORPUS "
                                            "(of --cell, if given), from its last.pt."),
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Train a model on CORPUS (files, folders, glob patterns); writes best.pt, last.pt and
    metrics.jsonl to the run folder, named after the first path.

    Settings left out come from the device's recipe (GRU 2x256 on a CPU, LSTM 3x1024 on a GPU).
    Each evaluation shows a short sample on stderr (not with --quiet or --json).
    """
    target = resolve_device(device)
    model_config, config = default_configs(
        target, init=None if resume else init, cell=cell, num_layers=num_layers, hidden_size=hidden_size,
        embedding_dim=embedding_dim, dropout=dropout, impl=impl, batch_size=batch_size, seq_len=seq_len, lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps, min_lr_frac=min_lr_frac, grad_clip=grad_clip, max_steps=max_steps,
        max_time=max_time, patience=patience, eval_every=eval_every, save_every=save_every, val_frac=val_frac,
        val_chars=val_chars, val_files=val_files, min_char_count=min_char_count, vocab=vocab, records=records,
        max_record_chars=max_record_chars, seed=seed, device=device, precision=precision, sample_chars=sample_chars,
        tensorboard=tensorboard, threads=threads)
    sources = Sources(tuple(corpus), tuple(include or ()), tuple(exclude or ()))
    budget = {}
    if resume:
        _warn_ignored_on_resume(ctx, out)
        budget = {"more_time": max_time if _typed(ctx, "max_time") else None,
                  "max_steps": max_steps if _typed(ctx, "max_steps") else None}
        if out is None:  # the newest run of this corpus (of --cell, if given), named before it starts
            out = newest_run(sources, cell)
            if world_from_env().is_main and not quiet:
                sys.stderr.write(f"resuming {out}\n")
    result = run_training(sources, model_config, config, out=out, resume=resume,
                          progress=False if quiet or as_json else None,
                          auto_dropout=not resume and not init and dropout_rule_applies(target, dropout),
                          on_eval=None if quiet or as_json else show_sample, notes=None if quiet else _note, **budget)
    if not result.is_main:  # another rank of a torchrun: rank 0 reports
        return
    best = result.run_dir / "best.pt"  # absent when a run stops before its first evaluation
    summary = {"run_dir": str(result.run_dir), "best_checkpoint": str(best) if best.is_file() else None,
               "steps": result.steps, "stop_reason": result.stop_reason,
               "best_val_loss": finite(result.best_val_loss), "best_val_bpc": finite(result.best_val_bpc),
               "elapsed_s": round(result.elapsed, 1),
               **({"model": describe_model(result.model_config)} if result.model_config else {}),
               **({"dropout_rule": result.dropout_choice.reason()} if result.dropout_choice else {}),
               **{f"records_{k}": n for k, n in (result.records or {}).items()},
               "parameters": result.parameters,
               "chars_per_s": round(result.chars_per_s), "device": result.device,
               "startup_s": round(result.startup_s, 2), "threads": result.threads}
    if as_json:
        print(json.dumps(summary))
    elif not quiet:
        console().print(table("Training summary", summary))
    if result.stop_reason == "interrupted":
        raise Interrupted


def _note(line: str) -> None:
    sys.stderr.write(f"{line}\n" if line.startswith("warning: ") else f"note: {line}\n")


# `chargen train` options that a resume still takes from the command line: where it runs, what it shows
# (--sample-chars, --tensorboard), and a new budget (--max-time adds seconds, --max-steps sets a new total).
# Without --out, --cell picks the run.
_RESUME_TAKES = {"corpus", "include", "exclude", "device", "precision", "out", "resume", "quiet", "as_json",
                 "max_time", "max_steps", "sample_chars", "tensorboard", "threads"}


def _typed(ctx: typer.Context, name: str) -> bool:
    """Whether the user gave this option, rather than its default (click's ParameterSource, by name)."""
    return getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")


def _warn_ignored_on_resume(ctx: typer.Context, out: Optional[Path]) -> None:
    """Name the settings given on the command line that a resume ignores (it continues with the run's own)."""
    takes = _RESUME_TAKES | ({"cell"} if out is None else set())
    given = [p for p in ctx.command.params if p.name not in takes and _typed(ctx, p.name)]
    if given:
        names = ", ".join(max(p.opts, key=len) for p in given)
        sys.stderr.write(f"warning: --resume continues with the run's own settings; ignored: {names} "
                         "(start a new run to change them)\n")


def describe_model(config: ModelConfig) -> str:
    """One line naming what the recipe chose: 'gru 2x256, embedding 64, dropout 0.0'."""
    impl = "" if config.impl == "torch" else f", {config.impl} cells"
    return (f"{config.cell} {config.num_layers}x{config.hidden_size}, embedding {config.embedding_dim}, "
            f"dropout {config.dropout}{impl}")


def prepare(
    corpus: Corpus,
    include: Include = None,
    exclude: Exclude = None,
    vocab: VocabKind = field_default(TC, "vocab"),
    min_char_count: MinCharCount = field_default(TC, "min_char_count"),
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Count and encode CORPUS into the cache that `chargen train` memory-maps (done once, until a file
    changes)."""
    sources = Sources(tuple(corpus), tuple(include or ()), tuple(exclude or ()))
    with PrepareBar(sources.name, False if quiet or as_json else None, size=lambda: work_bytes(sources, vocab)) as bar:
        p = prepare_corpus(sources, min_char_count, progress=bar.update, vocab=vocab)
    size = sum(os.path.getsize(f) for f in p.files)
    rare = sum(1 for c in p.counts if c not in p.vocab.chars)
    summary = {"corpus": str(sources), "files": len(p.files), "bytes": size, "characters": len(p.ids),
               "vocab": p.vocab.kind, "vocab_size": len(p.vocab),
               "rare_characters": rare, "unknown_symbol": p.vocab.unk, "dtype": p.ids.dtype.name,
               "cache": str(p.cache_dir), "cache_hit": p.cache_hit, "seconds": round(p.seconds, 3),
               "mb_per_s": round(size / 1e6 / max(p.seconds, 1e-9), 1)}
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        console().print(table("Prepared corpus", summary))
