"""The `chargen` command line: every command registered here, in one place.

The cli package is the only importer of typer and rich. Generated text alone goes to
stdout; bars, tables and messages go to stderr. Exit codes: 0 ok, 1 a ChargenError
(one line with a hint), 2 bad usage, 130 interrupted.
"""
from __future__ import annotations

import inspect
from typing import Annotated

import typer

from .. import __version__
from .cells import cells
from .common import guard
from .export import export_command
from .gradflow import gradflow
from .sample import evaluate, info, sample
from .study import compare, plot
from .train import prepare, train

COMMANDS = [  # (name, function): the order of `chargen --help`
    ("train", train), ("sample", sample), ("info", info), ("eval", evaluate), ("prepare", prepare),
    ("compare", compare), ("plot", plot), ("gradflow", gradflow), ("cells", cells),
    ("export", export_command),
]


def build_app() -> typer.Typer:
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      context_settings={"help_option_names": ["-h", "--help"]},
                      help="Train character-level RNN / LSTM / GRU models on any text file and sample from them.")
    app.callback()(_top_level)
    for name, fn in COMMANDS:
        app.command(name, help=_paragraphs(fn.__doc__))(guard(fn))
    return app


def _paragraphs(doc: str | None) -> str:
    """A command's docstring with each paragraph on one line: rich keeps a docstring's line breaks,
    so a line longer than the terminal would wrap early; joined, each paragraph fills the width."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc or "").split("\n\n"))


def _show_version(value: bool) -> None:
    if value:
        print(f"chargen {__version__}")
        raise typer.Exit()


def _top_level(version: Annotated[bool, typer.Option(
        "--version", metavar="", callback=_show_version, is_eager=True, help="Print the version and exit.")] = False
               ) -> None:
    """Options before the command: --version."""


app = build_app()


def main() -> None:
    app()
