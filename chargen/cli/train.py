"""`chargen train` and `chargen prepare`: build the configs from the flags (made from the config
dataclasses), --set, a --config file and the device's recipe, call the library, and render its summary."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer

from ..config import RunConfig, TrainConfig
from ..config.toml import parse_assignment, read_config_file
from ..data import Sources, prepare_corpus
from ..data.cache import work_bytes
from ..device import resolve_device
from ..errors import ChargenError
from ..model import ModelConfig
from ..progress import PrepareBar
from ..training import default_configs
from ..training import train as run_training
from ..training.recipes import default_help, dropout_rule_applies
from .common import Interrupted, console, field_default, finite, outlives_its_output, table
from .options import (PANELS, CorpusArg, Exclude, Include, Json, MinCharCount, Quiet, VocabKind, in_panel,
                      setting_parameters, with_settings)
from .watch import show_sample

TC = TrainConfig  # prepare's defaults come from the config dataclasses
TrainCorpus = Annotated[Optional[list[Path]], typer.Argument(
    metavar="CORPUS", help=get_args(CorpusArg)[1].help + " (default: the corpus of --config)", show_default=False)]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", metavar="FILE", rich_help_panel=PANELS["run"],
    help="Start from the settings in FILE: a run folder's config.toml repeats that run. --set and the "
         "flags given override them.")]
SetValue = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="KEY=VALUE", rich_help_panel=PANELS["run"],
    help="Set one setting by its name (repeatable): --set lr=0.01 --set cell=lstm.")]


@outlives_its_output  # `chargen train ... | head`: the run goes on to its end and saves
def train(
    corpus: TrainCorpus = None,
    include: in_panel(Include, PANELS["data"]) = None,  # type: ignore[valid-type]
    exclude: in_panel(Exclude, PANELS["data"]) = None,  # type: ignore[valid-type]
    config_file: ConfigFile = None,
    set_values: SetValue = None,
    out: Annotated[Optional[Path], typer.Option(
        metavar="PATH", rich_help_panel=PANELS["output"],
        help="Run folder (default checkpoints/<corpus>-<cell>).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", metavar="", rich_help_panel=PANELS["run"],
        help="Continue the run in --out, else the newest run of CORPUS (of --cell, if given), from its "
             "last.pt.")] = False,
    quiet: in_panel(Quiet, PANELS["output"]) = False,  # type: ignore[valid-type]
    as_json: in_panel(Json, PANELS["output"]) = False,  # type: ignore[valid-type]
    **flags,
) -> None:
    """Train a model on CORPUS (files, folders, glob patterns); writes best.pt, last.pt, metrics.jsonl and
    config.toml (the run's settings) to the run folder, named after the first path.

    Settings left out come from --config, else the device's recipe (GRU 2x256 on a CPU, LSTM 3x1024 on a GPU).
    Each evaluation shows a short sample on stderr (not with --quiet or --json).
    """
    values, sources = resolve_settings(corpus, include, exclude, config_file, set_values, flags, resume)
    if resume:
        _warn_ignored_on_resume(values, out)
    init = values.pop("init", None)
    target = resolve_device(values.get("device", "auto"))
    model_config, config = default_configs(target, init=None if resume else init, **values)
    budget: dict[str, Any] = {}
    if resume:
        budget = {"more_time": values.get("max_time"), "max_steps": values.get("max_steps")}
    result = run_training(sources, model_config, config, out=out, resume=resume,
                          progress=False if quiet or as_json else None,
                          auto_dropout=not resume and not init and dropout_rule_applies(target, values.get("dropout")),
                          on_eval=None if quiet or as_json else show_sample, notes=None if quiet else _note,
                          resume_cell=values.get("cell"), **budget)
    if result.is_main:  # another rank of a torchrun: rank 0 reports
        _report(result, quiet, as_json)


train = with_settings(train, setting_parameters(default_help))


def resolve_settings(corpus: Optional[list[Path]], include: Optional[list[str]], exclude: Optional[list[str]],
                     config_file: Optional[Path], set_values: Optional[list[str]], flags: dict,
                     resume: bool) -> tuple[dict, Sources]:
    """The settings given, flags over --set over --config (None: left to the recipe), and the corpus."""
    stored, stored_sources = read_config_file(config_file) if config_file is not None else ({}, None)
    if config_file is not None and resume:
        raise ChargenError("--resume continues with the run's own settings, and --config starts a run from a file",
                           "drop --config to resume, or --resume to start a new run")
    sets = dict(parse_assignment(text) for text in set_values or ())
    values = {**stored, **sets, **{k: v for k, v in flags.items() if v is not None}}
    if corpus:
        return values, Sources(tuple(map(str, corpus)), tuple(include or ()), tuple(exclude or ()))
    if stored_sources is None:
        raise typer.BadParameter("missing: give the corpus to train on, or --config FILE that names one",
                                 param_hint="CORPUS")
    return values, stored_sources


def _report(result, quiet: bool, as_json: bool) -> None:
    """The run's summary as JSON on stdout or a table on stderr; exit 130 when it was interrupted."""
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
    plain = line.startswith(("warning: ", "resuming "))  # a warning says so itself; "resuming RUN" is news
    sys.stderr.write(f"{line}\n" if plain else f"note: {line}\n")


def _warn_ignored_on_resume(given: dict, out: Optional[Path]) -> None:
    """Name the settings given (flags, --set) that a resume ignores: it continues with the run's own but
    for where it runs and what it shows (RunConfig), a new budget, and (without --out) the --cell that
    picks the run."""
    takes = {f.name for f in fields(RunConfig)} | {"max_time", "max_steps"} | ({"cell"} if out is None else set())
    ignored = [f"--{name.replace('_', '-')}" for name in given if name not in takes]
    if ignored:
        sys.stderr.write(f"warning: --resume continues with the run's own settings; ignored: {', '.join(ignored)} "
                         "(start a new run to change them)\n")


def describe_model(config: ModelConfig) -> str:
    """One line naming what the recipe chose: 'gru 2x256, embedding 64, dropout 0.0'."""
    impl = "" if config.impl == "torch" else f", {config.impl} cells"
    return (f"{config.cell} {config.num_layers}x{config.hidden_size}, embedding {config.embedding_dim}, "
            f"dropout {config.dropout}{impl}")


def prepare(
    corpus: CorpusArg,
    include: Include = None,
    exclude: Exclude = None,
    vocab: VocabKind = field_default(TC, "vocab"),
    min_char_count: MinCharCount = field_default(TC, "min_char_count"),
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Count and encode CORPUS into the cache that `chargen train` memory-maps (done once, until a file
    changes)."""
    sources = Sources(tuple(map(str, corpus)), tuple(include or ()), tuple(exclude or ()))
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
