"""`export()`: a trained model written in a form other programs read, in one step that either
completes or leaves nothing behind: safetensors (a model folder with a card), onnx (one
recurrent step as a graph) or web (one HTML page that generates text in a browser)."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..data.text import escape_controls
from ..data.vocab import utf8_bytes
from ..errors import ChargenError
from ..modelfile import Checkpoint, read_model
from ..modelfile.folder import CONFIG, WEIGHTS, is_chargen_config, write_model_files
from .card import CARD, describe, model_card

FORMATS = ("safetensors", "onnx", "web")
SUFFIX = {"safetensors": "", "onnx": ".onnx", "web": ".html"}  # a folder, or one file
LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")  # a Hub licence id: mit, cc-by-4.0, apache-2.0, other
LANGUAGE = re.compile(r"[a-z]{2,3}")  # an ISO 639-1 or 639-3 code: en, fr, fin
BIG_PAGE = 20e6  # bytes: a page past this opens slowly and is too big for most mail


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path
    files: tuple[str, ...]  # what `path` holds (a folder's files; a file's own name)
    bytes: int
    notes: tuple[str, ...] = ()  # one line each, "warning: ..." or "note: ...", for the person exporting


def default_out(checkpoint: Path, fmt: str) -> Path:
    """`<name>`, `<name>.onnx` or `<name>.html` in the current folder, where name is the run
    folder's name for a best.pt/last.pt, else the checkpoint's own name."""
    checkpoint = Path(checkpoint).resolve()
    name = checkpoint.parent.name if checkpoint.name in ("best.pt", "last.pt") else checkpoint.stem
    return Path((name or "model") + SUFFIX.get(fmt, ""))


def export(checkpoint: str | os.PathLike, fmt: str, out: str | os.PathLike | None = None,
           force: bool = False, title: str | None = None, corpus: str | None = None, license: str = "other",
           languages: tuple[str, ...] = ()) -> ExportResult:
    """Export the model in `checkpoint` (a .pt file or a model folder) as `fmt` to `out`.

    The output is built in a temporary folder beside `out` and renamed into place only when complete, so a failure
    (a full disk, a missing extra, Ctrl-C) leaves nothing half-written. An existing `out` is refused unless `force`
    and it is an earlier export in `fmt` (earlier_export: never a user's own files); it is replaced only once the
    new one is ready. `corpus` names the training corpus on the card and the page
    for a checkpoint that does not record it (one written before chargen kept it). `license` (a Hub licence id;
    "other": not stated) and `languages` (ISO 639 codes) go into the card's front matter. ChargenError for an
    unknown format, licence or language code, a checkpoint that is not chargen's, an output that would
    replace the checkpoint itself or that --force may not replace, or an unwritable folder.
    """
    if fmt not in FORMATS:
        raise ChargenError(f"unknown export format {fmt!r}", f"use --format {', '.join(FORMATS)}")
    check_card_fields(license, languages)
    checkpoint = Path(checkpoint)
    out = Path(out) if out is not None else default_out(checkpoint, fmt)
    source = checkpoint.resolve()
    if out.resolve() == source or out.resolve() in source.parents:
        raise ChargenError(f"--out {out} would replace the checkpoint being exported", "choose another --out")
    if (out.exists() or out.is_symlink()) and not force:
        raise ChargenError(f"{out} already exists", "choose another --out, or pass --force to replace it")
    if (out.exists() or out.is_symlink()) and not earlier_export(out, fmt):
        raise ChargenError(f"--force replaces only an earlier chargen {fmt} export, and {out} is not one",
                           "choose another --out, or move it aside yourself")
    ckpt = read_model(checkpoint)
    # A name from a file system or a command line may hold bytes that are not UTF-8: shown as U+FFFD.
    ckpt = replace(ckpt, corpus=printable(corpus or ckpt.corpus))
    model = ckpt.build_model(checkpoint)
    title = printable(title or (ckpt.corpus and f"chargen {ckpt.model_config.cell.upper()} on {ckpt.corpus}") or
                      f"chargen {ckpt.model_config.cell.upper()} model")
    builders: dict[str, Callable[..., None]] = {"safetensors": _safetensors, "onnx": _onnx, "web": _web}
    build = builders[fmt]
    name = printable(out.name)
    card = {"license": license, "languages": tuple(languages)}
    _publish(lambda target: build(ckpt, model, target, title, name, **card), out, is_dir=fmt == "safetensors")
    files = tuple(sorted(p.name for p in out.iterdir())) if out.is_dir() else (out.name,)
    size = sum(p.stat().st_size for p in out.iterdir()) if out.is_dir() else out.stat().st_size
    return ExportResult(fmt, out, files, size, export_notes(fmt, size, license))


def check_card_fields(license: str, languages: tuple[str, ...]) -> None:
    """ChargenError for a licence or language code the Hub's front matter would not accept."""
    if not LICENSE.fullmatch(license):
        raise ChargenError(f"--license {license!r} is not a licence identifier",
                           "use a Hub licence id such as mit, apache-2.0, cc-by-4.0, or other when unsure")
    bad = [code for code in languages if not LANGUAGE.fullmatch(code)]
    if bad:
        raise ChargenError(f"--language {bad[0]!r} is not an ISO 639 language code",
                           "use two or three lowercase letters, such as en, fr or fi; repeat it for each language")


def export_notes(fmt: str, size: int, license: str) -> tuple[str, ...]:
    """What the person exporting should know: a page too big to send or open quickly, a card without a licence."""
    if fmt == "web" and size > BIG_PAGE:
        return ((f"warning: the page is {size / 1e6:.0f} MB: it takes seconds to open and is too big for most "
                 "mail; a smaller model (--hidden-size, --num-layers) makes a smaller page"),)
    if fmt == "safetensors" and license == "other":
        return (("note: the card says license: other (not stated); pass --license ID (mit, cc-by-4.0, ...) if "
                 "you know the terms of the corpus"),)
    return ()


def printable(text: str) -> str:
    """`text` as a card, config.json or page can hold it: bytes that are not UTF-8 (which Python carries
    from a file name or the command line as lone surrogates) as U+FFFD, control characters escaped."""
    return escape_controls(utf8_bytes(text).decode("utf-8", "replace"))


def earlier_export(path: Path, fmt: str) -> bool:
    """Whether `path` holds exactly what an export in `fmt` writes, so that --force may replace it: a folder of
    the three files of a model folder whose config.json is chargen's, a page with the export page's marker, or an
    ONNX file with chargen's metadata. Never a link, nor anything else a user may keep there."""
    if path.is_symlink():
        return False
    if fmt == "safetensors":
        return path.is_dir() and sorted(p.name for p in path.iterdir()) == sorted((CARD, CONFIG, WEIGHTS)) \
            and is_chargen_config(path / CONFIG)
    if not path.is_file():
        return False
    if fmt == "web":
        from .web import is_page
        return is_page(path)
    from .onnx import is_chargen_onnx
    return is_chargen_onnx(path)


def _safetensors(ckpt: Checkpoint, model, folder: Path, title: str, name: str, **card) -> None:
    write_model_files(ckpt, folder)
    (folder / CARD).write_text(model_card(ckpt, model, title, name, **card), encoding="utf-8")


def _onnx(ckpt: Checkpoint, model, path: Path, title: str, name: str, **card) -> None:
    from .onnx import export_onnx  # here, not above: a safetensors export needs none of the ONNX code

    export_onnx(model, ckpt.vocab, path, _records(ckpt))


def _web(ckpt: Checkpoint, model, path: Path, title: str, name: str, **card) -> None:
    from .web import page_text

    # Written plainly: _publish makes it atomic, and names --out (not its temporary path) if the disk is full.
    path.write_text(page_text(model, ckpt.vocab, title, describe(ckpt, model), _records(ckpt)), encoding="utf-8")


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
    except BaseException as e:  # Ctrl-C too: between the two renames the old one is only aside, never lost
        if old is not None and not (out.exists() or out.is_symlink()):
            os.replace(old, out)  # put the old one back
            old = None
        if not isinstance(e, OSError):
            raise
        raise ChargenError(f"could not write {out}: {e.strerror or e}",
                           "free some disk space or choose a writable --out folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        elif old is not None:
            old.unlink(missing_ok=True)
