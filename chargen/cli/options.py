"""Options that several commands share, declared once as Annotated types; a command gives
the default. Flags are the kebab-case of the config fields they set."""
from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import Field, fields
from pathlib import Path
from typing import Annotated, Any, Optional, get_args

import typer

from ..config import GROUPS, TrainConfig
from ..model import ModelConfig

Device = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps.")]
# Sampling and gradflow step through text one character at a time, where MPS's fixed cost per operation
# outweighs its speed, so their `auto` skips it (resolve_device's mps=False); a CUDA GPU samples as a CUDA graph.
StepDevice = Annotated[str, typer.Option(help="auto (CUDA if available, else the CPU; never MPS, whose cost per "
                                              "step outweighs its speed here), cpu, cuda, cuda:N or mps.")]
Json = Annotated[bool, typer.Option("--json", metavar="", help="Print the result as JSON on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="No progress bars, tables or messages.")]
CheckpointArg = Annotated[Optional[Path], typer.Argument(
    help="A .pt file or an exported model folder (default: the newest checkpoints/**/best.pt).",
    show_default=False)]
CorpusArg = Annotated[list[Path], typer.Argument(
    metavar="CORPUS",
    help="What to learn from: UTF-8 text files (any files with --vocab bytes), folders (every file below them, "
         "hidden ones skipped) or quoted glob patterns ('src/**/*.py'). Several files are joined in a stable order "
         "(each path's files sorted by relative path), each followed by the file separator U+001C.",
    show_default=False)]
Include = Annotated[Optional[list[str]], typer.Option(
    "--include", metavar="PATTERN", show_default=False,
    help="Keep only files matching this pattern (repeatable), tried on the path relative to the folder given and on "
         "the file name: '*.py', 'docs/*'.")]
Exclude = Annotated[Optional[list[str]], typer.Option(
    "--exclude", metavar="PATTERN", help="Leave out files matching this pattern (repeatable), as --include matches.",
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


# -- `chargen train`'s settings: options made from the config dataclasses' declarations ------------
PANELS = {"model": "Model", "data": "Data", "optimisation": "Optimisation", "schedule": "Schedule", "run": "Run",
          "output": "Output"}
ALIASES = {"num_layers": ("--layers",)}  # older spellings that keep working
METAVARS = {int: "INTEGER", float: "FLOAT", str: "TEXT", bool: ""}  # a flag takes no value


def setting_fields() -> list[Field]:
    """Every setting of ModelConfig and TrainConfig (those declared with a group), in the help's order."""
    found = [f for f in fields(ModelConfig) + fields(TrainConfig) if "group" in f.metadata]
    return sorted(found, key=lambda f: GROUPS.index(f.metadata["group"]))


def setting_parameters(default_text: Callable[[str], str]) -> list[inspect.Parameter]:
    """One keyword parameter per setting, None when not given (so that the recipe, or a --config file,
    decides): its flag the field's name in kebab case, its help the field's with `default_text(name)`."""
    params = []
    for f in setting_fields():
        kind, flag = type(f.default), f"--{f.name.replace('_', '-')}"
        # `\\[` is a literal bracket in the help's rich markup, which would otherwise swallow "[tensorboard]".
        text = f"{f.metadata['help']} {default_text(f.name)}".replace("[", "\\[")
        option = typer.Option(flag, *ALIASES.get(f.name, ()), help=text, show_default=False,
                              rich_help_panel=PANELS[f.metadata["group"]],
                              metavar=f.metadata.get("metavar") or METAVARS[kind])
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[kind], option]))
    return params


def with_settings(fn: Callable, params: list[inspect.Parameter]) -> Callable:
    """`fn` (taking **settings) with a signature that lists `params` in its place, which typer reads.
    Typer passes every value by name, so all are keyword parameters here, ordered by help panel."""
    own = inspect.signature(fn, eval_str=True)
    listed = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own.parameters.values()
              if p.kind is not inspect.Parameter.VAR_KEYWORD] + params
    order = [None, *PANELS.values()]
    listed.sort(key=lambda p: order.index(_panel(p.annotation)))
    setattr(fn, "__signature__", own.replace(parameters=listed))  # noqa: B010 (mypy: Callable has no such attribute)
    fn.__annotations__ = {p.name: p.annotation for p in listed}
    return fn


def _panel(annotation: Any) -> str | None:
    """The help panel an Annotated option is shown under (None: typer's own)."""
    infos = get_args(annotation)[1:]
    return getattr(infos[0], "rich_help_panel", None) if infos else None


def in_panel(annotated: Any, panel: str) -> Any:
    """A shared Annotated option shown under `panel` of one command's help."""
    kind, info = get_args(annotated)
    info = copy.copy(info)
    info.rich_help_panel = panel
    return Annotated[kind, info]
