"""config.toml: a run's fully resolved settings, one section per kind of setting, and the corpus
it was given, written into every run folder so that `chargen train --config FILE` repeats the run.
Read with the standard library's tomllib (the `tomli` package on Python 3.10); written by the
small writer below, which needs nothing more for strings, numbers, booleans and lists of strings.
"""
from __future__ import annotations


import json
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..data import Sources
from ..errors import ChargenError
from ..fileio import atomic_write
from ..model import ModelConfig
from .settings import DataConfig, OptimConfig, RunConfig, ScheduleConfig, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same reader, from PyPI
    import tomli as tomllib

CONFIG_FILE = "config.toml"
# Each section and the settings it holds; a model's vocab_size is the corpus's, never a setting.
SECTIONS = {"model": tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size"),
            **{name: tuple(f.name for f in fields(cls)) for name, cls in (
                ("optimisation", OptimConfig), ("schedule", ScheduleConfig), ("data", DataConfig),
                ("run", RunConfig))}}
CORPUS_KEYS = ("paths", "include", "exclude")
TYPES = {f.name: type(f.default) for f in fields(ModelConfig) + fields(TrainConfig)}


def write_config_file(folder: Path, model: ModelConfig, train: TrainConfig, sources: Sources) -> Path:
    """Write `folder`/config.toml (whole or not at all: a temporary file renamed over it)."""
    values = {**model.to_dict(), **train.to_dict()}
    lines = ["# chargen train --config FILE repeats this run; --set KEY=VALUE or a flag changes a setting.", "",
             "[corpus]", f"paths = {_value([os.path.abspath(p) for p in sources.paths])}",
             f"include = {_value(list(sources.include))}", f"exclude = {_value(list(sources.exclude))}"]
    for section, names in SECTIONS.items():
        lines += ["", f"[{section}]", *(f"{name} = {_value(values[name])}" for name in names)]
    path = Path(folder) / CONFIG_FILE
    with atomic_write(path, "w", encoding="utf-8", fsync=True) as f:
        f.write("\n".join(lines) + "\n")
    return path


def _value(value: Any) -> str:
    """A TOML value: a JSON string is a TOML basic string, and JSON's numbers and lists are TOML's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def read_config_file(path: str | os.PathLike) -> tuple[dict[str, Any], Sources | None]:
    """The settings in a config.toml (flat: {"lr": 0.003, ...}) and its corpus (None when it names
    none); ChargenError for an unreadable file, an unknown section or setting, or a wrongly typed value."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ChargenError(f"cannot read the settings in {path}: {str(e).splitlines()[0][:160]}",
                           "pass a config.toml written by chargen train") from None
    settings, sources = {}, None
    for section, table in data.items():
        known = CORPUS_KEYS if section == "corpus" else SECTIONS.get(section)
        if known is None or not isinstance(table, dict):
            raise ChargenError(f"{path} has an unknown section [{section}]",
                               f"the sections are: corpus, {', '.join(SECTIONS)}")
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ChargenError(f"{path} has an unknown setting {unknown[0]!r} in [{section}]",
                               f"[{section}] takes: {', '.join(known)}")
        if section != "corpus":
            settings.update({name: checked(name, value, str(path)) for name, value in table.items()})
    corpus = data.get("corpus", {})
    lists = [corpus.get(k, []) for k in CORPUS_KEYS]
    if not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in lists):
        raise ChargenError(f"{path} has a damaged [corpus]: paths, include and exclude are lists of strings",
                           'write them as paths = ["corpus.txt"]')
    if lists[0]:
        sources = Sources(tuple(lists[0]), tuple(lists[1]), tuple(lists[2]))
    return settings, sources


def checked(name: str, value: Any, where: str) -> Any:
    """`value` if it has the type of setting `name` (an integer stands for a float); ChargenError else.
    Its range is the config dataclass's to check."""
    kind = TYPES[name]
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ChargenError(f"{where}: {name} takes {_KIND_NAMES[kind]}, got {value!r}",
                           f"write it as {name} = {_value(DEFAULTS[name])}")
    return value


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
DEFAULTS = {f.name: f.default for f in fields(ModelConfig) + fields(TrainConfig)}


def parse_assignment(text: str) -> tuple[str, Any]:
    """'lr=0.01' or 'optimisation.lr=0.01' (from --set) as ("lr", 0.01), the value read as the setting's
    type; ChargenError for an unknown setting or a value of the wrong type."""
    key, sep, raw = text.partition("=")
    section, _, name = key.strip().rpartition(".")
    if not sep or name not in TYPES or name == "vocab_size" or (section and name not in SECTIONS.get(section, ())):
        raise ChargenError(f"--set {text!r} names no setting", "write --set KEY=VALUE, KEY one of the flags' names "
                                                                "with _ for -: --set lr=0.01")
    kind, raw = TYPES[name], raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"] if kind is not str or raw[:1] in ("'", '"') else raw
    except tomllib.TOMLDecodeError:
        value = raw
    return name, checked(name, value, f"--set {text}")
