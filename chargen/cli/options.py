"""Options that several commands share, declared once as Annotated types; a command gives
the default. Flags are the kebab-case of the config fields they set."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Device = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps.")]
# Sampling and gradflow step through text one character at a time, where MPS's fixed cost per operation
# outweighs its speed, so their `auto` skips it (resolve_device's mps=False); a CUDA GPU samples as a CUDA graph.
StepDevice = Annotated[str, typer.Option(help="auto (CUDA if available, else the CPU; never MPS, whose cost per "
                                              "step outweighs its speed here), cpu, cuda, cuda:N or mps.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars, tables or messages.")]
CheckpointArg = Annotated[Optional[Path], typer.Argument(
    help="A .pt file or an exported model folder (default: the newest checkpoints/**/best.pt).",
    show_default=False)]
Corpus = Annotated[list[Path], typer.Argument(
    help="What to learn from: UTF-8 text files (any files with --vocab bytes), folders (every file below them, "
         "hidden ones skipped) or quoted glob patterns ('src/**/*.py'). Several files are joined in a stable order "
         "(each path's files sorted by relative path), each followed by the file separator U+001C.",
    show_default=False)]
Include = Annotated[Optional[list[str]], typer.Option(
    "--include", help="Keep only files matching this pattern (repeatable), tried on the path relative to the "
                      "folder given and on the file name: '*.py', 'docs/*'.", show_default=False)]
Exclude = Annotated[Optional[list[str]], typer.Option(
    "--exclude", help="Leave out files matching this pattern (repeatable), as --include matches.",
    show_default=False)]
VOCAB_HELP = ("chars: the corpus's characters (UTF-8 text); bytes: the 256 byte values, so that any file "
              "trains (Latin-1, Shift-JIS, mixed, binary), at the cost of more steps per character.")
VocabKind = Annotated[str, typer.Option("--vocab", help=VOCAB_HELP)]
Seed = Annotated[int, typer.Option(help="Random seed: the same seed gives the same run.")]
NumLayers = Annotated[int, typer.Option("--num-layers", "--layers", help="Stacked recurrent layers.")]
HiddenSize = Annotated[int, typer.Option(help="Units per recurrent layer.")]
EmbeddingDim = Annotated[int, typer.Option(help="Size of a character's embedding.")]
BatchSize = Annotated[int, typer.Option(help="Parallel streams per step.")]
SeqLen = Annotated[int, typer.Option(help="Characters per BPTT window.")]
MinCharCount = Annotated[int, typer.Option(help="Rarer characters become one unknown symbol.")]
