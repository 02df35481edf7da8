"""The library must import without the CLI's dependencies and without side effects."""
from __future__ import annotations

import json
import subprocess
import sys

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
