"""What an export leaves on disk: files others may read (under the umask), and on a full disk one line,
exit 1 and any earlier export untouched, for each format. The full disk is a real one: a small tmpfs,
mounted where the test may (as root), else the test is skipped."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargen.cli import app
from chargen.modelfile.folder import WEIGHTS

FORMATS = {"safetensors": "m", "web": "m.html", "onnx": "m.onnx"}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(folder: Path) -> dict[str, bytes | str]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_files_are_readable_by_others_under_the_umask(trained_run, tmp_path, fmt):
    """Guards against a model.safetensors readable by its owner only (0600) beside 0644 files."""
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    old = os.umask(0o022)
    try:
        result = invoke("export", trained_run.best, "--format", fmt, "--out", tmp_path / FORMATS[fmt])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    out = tmp_path / FORMATS[fmt]
    files = sorted(out.iterdir()) if out.is_dir() else [out]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {p.name: "0o644" for p in files}
    if fmt == "safetensors":
        assert WEIGHTS in {p.name for p in files}


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs at tmp_path/disk, unmounted afterwards; skips where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                                 capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root and the right to mount)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=10, check=False)


def fill(disk: Path, spare: int = 8192) -> None:
    """Fill `disk` but for about `spare` bytes."""
    (disk / "spare").write_bytes(b"\0" * spare)
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    (disk / "spare").unlink()


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_is_one_line_and_keeps_the_earlier_export(trained_run, small_disk, fmt):
    """Guards against a full disk that crashes an export (safetensors' own writer raised its own error
    type) or loses the earlier export that --force was to replace."""
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    out = small_disk / FORMATS[fmt]
    assert invoke("export", trained_run.best, "--format", fmt, "--out", out).exit_code == 0
    fill(small_disk)
    before = tree(small_disk)
    result = invoke("export", trained_run.best, "--format", fmt, "--out", out, "--force")
    assert (result.exit_code, result.stdout) == (1, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not write ") and "No space left on device" in lines[0]
    assert "(hint: free some disk space" in lines[0]
    assert tree(small_disk) == before
