"""The library must import without the CLI's dependencies and without side effects."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import chargen


def test_import_chargen_loads_no_cli_dependencies():
    """`import chargen` must not pull in typer, click or rich (the library works where they are absent) or print."""
    code = ("import json, sys; import chargen; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(proc.stdout) == []
    assert proc.stderr == ""


def test_public_api_is_exported():
    """Every name in chargen.__all__ must exist, so `from chargen import *` and the docs stay true."""
    missing = [name for name in chargen.__all__ if not hasattr(chargen, name)]
    assert missing == []
    assert chargen.__version__ == "0.1.0"


# -- the package's shape: read from the source, so a new module is checked the day it lands --------

import ast  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(chargen.__file__).parent
# Each layer may import only the layers before it: data first, cli last. The top-level modules (errors,
# fileio, device, progress, interrupts, threads, memory) sit below every package; the settings (config) below
# the model files that store them (modelfile), and those below training. sample/ sits below training/: it needs only
# data and model, and the training preview draws through it. chargen/__init__.py, the facade, above all.
ORDER = ["errors", "fileio", "device", "progress", "interrupts", "threads", "memory",
         "data", "model", "config", "modelfile", "sample",
         "training", "study", "export", "cli", "__main__"]


def modules() -> dict[str, Path]:
    """Dotted name (without 'chargen.') -> file, for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name or "__init__"] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """The chargen modules that `name` imports (module level or inside functions), as dotted names."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "__init__":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "chargen":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:  # `from . import x` imports the module x
                full = ".".join(target + [alias.name])
                found.add(full if full in modules() else ".".join(target))
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("chargen.")}
    return {f for f in found if f}


def layer(name: str) -> int:
    return ORDER.index(name.split(".")[0])


def test_imports_point_down_the_layers_only():
    """Guards against an upward import (the model importing a study tool, the library importing the
    CLI): every module imports only its own layer or the layers before it in ORDER."""
    upward = [(name, target) for name, path in modules().items() if name != "__init__"
              for target in imports_of(name, path) if layer(target) > layer(name)]
    assert upward == []


MODEL_READERS = {"Checkpoint", "load_model", "read_model", "read_checkpoint", "read_model_folder"}


def test_models_are_read_through_modelfile_not_the_trainer():
    """Guards against reading a model through the trainer: sample/, study/, export/ and cli/ take the
    model files' names from modelfile (below training), and sample/ and export/ import no training at all."""
    wrong = []
    for name, path in modules().items():
        if name == "__init__" or layer(name) <= layer("training"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and {a.name for a in node.names} & MODEL_READERS:
                if "modelfile" not in (node.module or "").split("."):
                    wrong.append((name, node.module))
        if name.split(".")[0] in ("sample", "export") and any(t.split(".")[0] == "training"
                                                              for t in imports_of(name, path)):
            wrong.append((name, "training"))
    assert wrong == []
    assert layer("modelfile") < layer("training") and layer("modelfile") < layer("sample")


def test_no_import_closes_a_circle():
    """Guards against two modules importing each other, directly or round a longer loop."""
    graph = {name: {t for t in imports_of(name, path) if t in modules()} for name, path in modules().items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (loop := visit(nxt, path + [node])):
                return loop
        state[node] = 2
        return None

    loops = [loop for name in sorted(graph) if name not in state and (loop := visit(name, []))]
    assert loops == []


def test_the_layer_test_sees_what_it_checks():
    """Guards against a test that passes because it parses nothing: it finds every layer, and the
    imports it knows are there."""
    names = modules()
    assert {n.split(".")[0] for n in names} >= set(ORDER) and len(names) > 30
    assert "model" in imports_of("training.trainer", names["training.trainer"])
    assert "data.vocab" in imports_of("data.cache", names["data.cache"])
    assert "sample.step" in imports_of("sample.rounds", names["sample.rounds"])
    assert "cli.app" in imports_of("__main__", names["__main__"])


PRIVATE = re.compile(r"torch\._|_VF\b|aten\._|\._flat_weights|\._apply\b|torch\.jit|\bfound_inf\b|\bgrad_scale\b"
                     r"|torch\.cpu\._")


def test_only_public_torch_api():
    """Guards against private PyTorch internals (torch._*, _VF, aten._*, private attributes of torch
    objects) and TorchScript in the library: any release may remove them without notice."""
    hits = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for path in modules().values()
            for i, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert hits == []
    assert PRIVATE.search("torch._VF.lstm(x)") and PRIVATE.search("torch.ops.aten._thnn_fused_gru_cell")


def test_no_environment_switches_in_the_library():
    """Guards against behaviour switched by environment variables: the library reads only where the
    corpus cache lives and what torchrun tells a process about its world."""
    allowed = {"CHARGEN_CACHE", "XDG_CACHE_HOME", "WORLD_SIZE", "RANK", "LOCAL_RANK"}
    read = set()
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}",
                                                                                              node.value):
                src = path.read_text()
                if f"environ.get(\"{node.value}\"" in src or f"environ[\"{node.value}\"]" in src:
                    read.add(node.value)
    assert read <= allowed and "CHARGEN_CACHE" in read


def test_only_the_cli_imports_typer_and_rich_and_only_it_prints():
    """Guards against library code that renders: typer and rich belong to the cli package, and
    print() to the commands that write JSON or text to stdout."""
    offenders = []
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        prints = any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print" for n in ast.walk(tree))
        if not name.startswith("cli") and (roots & {"typer", "rich", "click"} or prints):
            offenders.append(name)
    assert offenders == []


def test_the_distribution_ships_every_subpackage():
    """Guards against `packages = ["chargen"]`, which installs the top package without its
    subpackages: pyproject's package search finds every folder of the package."""
    from setuptools import find_packages

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(ROOT.parent), include=config["include"]))
    on_disk = {".".join(p.parent.relative_to(ROOT.parent).parts) for p in ROOT.rglob("__init__.py")}
    assert found == on_disk and {"chargen.data", "chargen.model", "chargen.cli"} <= found
