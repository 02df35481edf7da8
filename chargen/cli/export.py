"""`chargen export`: write a trained model as a safetensors folder, an ONNX step or a web page."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..export import FORMATS, export
from .common import checkpoint_path
from .options import CheckpointArg, Json, Quiet

NEXT_STEP = {
    "safetensors": "chargen sample {path} --temp 0.8   (or upload the folder to a model hub as it is)",
    "onnx": "run it with onnxruntime: inputs ids (B,) and the state, outputs logits and the next state "
            "(docs/sharing.md has a loop for every kind of model)",
    "web": "open {path} in a browser: it works offline, and it is one file to send",
}


def export_command(
    checkpoint: CheckpointArg = None,
    fmt: str = typer.Option("safetensors", "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    out: Optional[Path] = typer.Option(None, help="Where to write: a folder for safetensors, a .onnx or .html file "
                                                  "(default: named after the run, in the current folder)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists (only once the new one is ready)."),
    title: Optional[str] = typer.Option(None, help="Title of the model card or web page."),
    corpus: Optional[str] = typer.Option(None, help="Name of the training corpus, for a checkpoint that does not "
                                                    "record it (written by an older chargen)."),
    license: str = typer.Option("other", "--license", metavar="ID",
                                help="The model card's licence, as a Hugging Face Hub id (mit, cc-by-4.0, ...); "
                                     "other: not stated."),
    language: Optional[list[str]] = typer.Option(None, "--language", metavar="CODE",
                                                 help="A language of the corpus, as an ISO 639 code (en, fr); "
                                                      "repeat for several."),
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Export a model for use outside chargen: safetensors (a model folder with config.json and a
    model card), onnx (one recurrent step; needs the export extra) or web (a page that generates
    text in the browser, offline)."""
    result = export(checkpoint_path(checkpoint, quiet or as_json), fmt, out, force, title, corpus, license,
                    tuple(language or ()))
    if as_json:
        print(json.dumps({"format": result.format, "path": str(result.path), "files": list(result.files),
                          "bytes": result.bytes, "notes": list(result.notes)}))
        return
    if not quiet:
        sys.stderr.write(f"wrote {result.path} ({result.bytes / 1e6:.1f} MB: {', '.join(result.files)})\n"
                         f"next: {NEXT_STEP[result.format].format(path=result.path)}\n")
    for note in result.notes:  # a warning even with --quiet: it is about what was written
        if not quiet or note.startswith("warning:"):
            sys.stderr.write(note + "\n")
