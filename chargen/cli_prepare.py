"""The command line's `chargen prepare`: encode a corpus into the cache ahead of training.

Registered on cli.py's app; it only parses, calls prepare.prepare_corpus and renders.
"""
from __future__ import annotations

import json
from pathlib import Path

import typer

from .cli import _default, _err, _guard, _table, app
from .config import TrainConfig
from .prepare import prepare_corpus
from .train import PrepareBar


@app.command()
@_guard
def prepare(
    corpus: Path = typer.Argument(..., help="UTF-8 text file to encode.", show_default=False),
    min_char_count: int = typer.Option(_default(TrainConfig, "min_char_count"),
                                       help="Rarer characters become one unknown symbol."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Count and encode CORPUS into the cache that `chargen train` memory-maps (done once per file)."""
    with PrepareBar(corpus, False if quiet or as_json else None) as bar:
        p = prepare_corpus(corpus, min_char_count, progress=bar.update)
    size = corpus.stat().st_size
    rare = sum(1 for c in p.counts if c not in p.vocab.chars)
    summary = {"corpus": str(corpus), "bytes": size, "characters": len(p.ids), "vocab_size": len(p.vocab),
               "rare_characters": rare, "unknown_symbol": p.vocab.unk, "dtype": p.ids.dtype.name,
               "cache": str(p.cache_dir), "cache_hit": p.cache_hit, "seconds": round(p.seconds, 3),
               "mb_per_s": round(size / 1e6 / max(p.seconds, 1e-9), 1)}
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
    elif not quiet:
        _err().print(_table("Prepared corpus", summary))
