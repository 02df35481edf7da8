"""`export()`: a trained model written in a form other programs read, in one step that either
completes or leaves nothing behind: safetensors (a model folder with a card), onnx (one
recurrent step as a graph) or web (one HTML page that generates text in a browser)."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import ChargenError
from ..training import Checkpoint, read_model
from ..training.folder import write_model_files
from .card import describe, model_card

FORMATS = ("safetensors", "onnx", "web")
SUFFIX = {"safetensors": "", "onnx": ".onnx", "web": ".html"}  # a folder, or one file


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path
    files: tuple[str, ...]  # what `path` holds (a folder's files; a file's own name)
    bytes: int


def default_out(checkpoint: Path, fmt: str) -> Path:
    """`<name>`, `<name>.onnx` or `<name>.html` in the current folder, where name is the run
    folder's name for a best.pt/last.pt, else the checkpoint's own name."""
    checkpoint = Path(checkpoint).resolve()
    name = checkpoint.parent.name if checkpoint.name in ("best.pt", "last.pt") else checkpoint.stem
    return Path((name or "model") + SUFFIX.get(fmt, ""))


def export(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None,
           force: bool = False, title: str | None = None, corpus: str | None = None) -> ExportResult:
    """Export the model in `checkpoint` (a .pt file or a model folder) as `fmt` to `out`.

    The output is built in a temporary folder beside `out` and renamed into place only when complete, so a failure
    (a full disk, a missing extra, Ctrl-C) leaves nothing half-written. An existing `out` is refused unless `force`;
    then it is replaced only once the new one is ready. `corpus` names the training corpus on the card and the page
    for a checkpoint that does not record it (one written before chargen kept it). ChargenError for an unknown
    format, a checkpoint that is not chargen's, an output that would replace the checkpoint itself, or an unwritable
    folder.
    """
    if fmt not in FORMATS:
        raise ChargenError(f"unknown export format {fmt!r}", f"use --format {', '.join(FORMATS)}")
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else default_out(checkpoint, fmt)
    source = checkpoint.resolve()
    if out.resolve() == source or out.resolve() in source.parents:
        raise ChargenError(f"--out {out} would replace the checkpoint being exported", "choose another --out")
    if out.exists() and not force:
        raise ChargenError(f"{out} already exists", "choose another --out, or pass --force to replace it")
    ckpt = read_model(checkpoint)
    if corpus:
        ckpt = replace(ckpt, corpus=corpus)
    model = ckpt.build_model(checkpoint)
    title = title or (ckpt.corpus and f"chargen {ckpt.model_config.cell.upper()} on {ckpt.corpus}") or \
        f"chargen {ckpt.model_config.cell.upper()} model"
    build = {"safetensors": _safetensors, "onnx": _onnx, "web": _web}[fmt]
    _publish(lambda target: build(ckpt, model, target, title, out.name), out, is_dir=fmt == "safetensors")
    files = tuple(sorted(p.name for p in out.iterdir())) if out.is_dir() else (out.name,)
    size = sum(p.stat().st_size for p in out.iterdir()) if out.is_dir() else out.stat().st_size
    return ExportResult(fmt, out, files, size)


def _safetensors(ckpt: Checkpoint, model, folder: Path, title: str, name: str) -> None:
    write_model_files(ckpt, folder)
    (folder / "README.md").write_text(model_card(ckpt, model, title, name), encoding="utf-8")


def _onnx(ckpt: Checkpoint, model, path: Path, title: str, name: str) -> None:
    from .onnx import export_onnx  # here, not above: a safetensors export needs none of the ONNX code

    export_onnx(model, ckpt.vocab, path, _records(ckpt))


def _web(ckpt: Checkpoint, model, path: Path, title: str, name: str) -> None:
    from .web import write_page

    write_page(model, ckpt.vocab, path, title, describe(ckpt, model), _records(ckpt))


def _records(ckpt: Checkpoint) -> bool:
    """Whether the model was trained on records (--records)."""
    return bool(ckpt.train_config and ckpt.train_config.records)


def _publish(build, out: Path, is_dir: bool) -> None:
    """Run build(target) on a temporary path beside `out`, then move the result to `out`
    (replacing what is there only after the build succeeded)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise ChargenError(f"cannot write to {out.parent.resolve()}: {e.strerror or e}",
                           "choose a writable --out folder") from None
    old = None
    try:
        built = tmp if is_dir else tmp / out.name
        build(built)
        if is_dir:
            os.chmod(tmp, 0o755)  # mkdtemp makes 0700; an exported folder is for others to read
        if out.exists() or out.is_symlink():  # --force: move the old one aside, then swap
            old = out.with_name(f".{out.name}.old{tmp.suffix}{os.getpid()}")
            os.replace(out, old)
        os.replace(built, out)
    except OSError as e:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the old one back
            old = None
        raise ChargenError(f"could not write {out}: {e.strerror or e}",
                           "free some disk space or choose a writable --out folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        elif old is not None:
            old.unlink(missing_ok=True)
