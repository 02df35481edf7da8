"""The repository's habits, read from its files: what CI runs, what the extras hold, where the
documents' pictures live and what they link to, and that the benchmarks need nothing outside a clone."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_readme_test_command_is_exactly_what_ci_runs():
    """Guards against the README and .ci/run drifting apart: a reader who runs the README's command runs CI,
    and that command runs the slow tests, the linter and the type checker too."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci in readme.splitlines()
    assert ci.endswith('python -m pytest -m "" && ruff check && mypy')


def test_plain_pytest_leaves_out_slow_tests():
    """Guards against slow tests running by default: `pytest` alone deselects them, `-m ""` restores them."""
    assert PYPROJECT["tool"]["pytest"]["ini_options"]["addopts"] == ["-m", "not slow"]


def test_matplotlib_is_named_once_and_the_test_extra_is_composed_from_the_others():
    """Guards against matplotlib being both a dependency and an extra, and against the test extra
    repeating (and drifting from) the other extras' pins."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    named = [req for reqs in [project["dependencies"], *extras.values()] for req in reqs if "matplotlib" in req]
    assert named == ["matplotlib>=3.5"] and extras["plot"] == ["matplotlib>=3.5"]
    others = sorted(name for name in extras if name != "test")
    assert extras["test"][0] == f"chargen[{','.join(others)}]"
    assert [req for req in extras["test"][1:] if req.split("=")[0].split(">")[0] in
            {r.split("=")[0].split(">")[0] for name in others for r in extras[name]}] == []
    assert {"ruff", "mypy"} <= {re.split(r"[=<>]", req)[0] for req in extras["test"]}


def test_package_ships_py_typed():
    """Guards against users' type checkers ignoring chargen's annotations: PEP 561's marker is shipped."""
    assert (REPO / "chargen" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["chargen"]


DOCUMENTS = ["README.md", "benchmarks/README.md", "corpora/README.md", "checkpoints/README.md",
             *(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [m for m in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z]+:", m) and m[0] != "#"]


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_every_relative_link_in_the_documents_names_a_file(doc):
    """Guards against links left behind when pictures and pages moved to docs/assets/."""
    path = REPO / doc
    missing = [link for link in _links(path) if not (path.parent / link.split("#")[0]).exists()]
    assert missing == []


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_every_benchmark_command_in_the_documents_runs_from_a_clone(doc):
    """Guards against figures whose command needs a file the repository lacks: no ../shared path or outside
    reference loop, and a paragraph or table row that quotes a benchmark on tinyshakespeare (not shipped)
    names the user's copy with --corpus PATH/tinyshakespeare.txt."""
    text = (REPO / doc).read_text(encoding="utf-8")
    assert "../shared" not in text and "reference_loop" not in text
    blocks = re.split(r"\n\s*\n|\n(?=\|)", text)  # paragraphs, and each table row on its own
    bare = [b[:80] for b in blocks if "tinyshakespeare" in b.lower() and "python benchmarks/" in b
            and "--corpus PATH/tinyshakespeare.txt" not in b]
    assert bare == []


def test_generated_pages_and_pictures_live_in_docs_assets():
    """Guards against docs/ mixing prose with generated files: those go to docs/assets/."""
    assert sorted(p.name for p in (REPO / "docs").iterdir() if p.is_file() and p.suffix != ".md") == []
    assert {"cells.png", "shakespeare-gru.html", "web_page.png"} <= {p.name for p in (REPO / "docs/assets").iterdir()}


def test_benchmark_results_hold_outputs_only():
    """Guards against scripts and empty files piling up among the raw outputs."""
    files = [p for p in (REPO / "benchmarks" / "results").rglob("*") if p.is_file()]
    assert [p.name for p in files if p.suffix in (".py", ".sh")] == []
    assert [p.name for p in files if p.stat().st_size == 0] == []


def test_benchmarks_need_nothing_outside_the_clone():
    """Guards against the benchmarks reading ../shared: the yardstick and the corpus are in the repository,
    and ../shared appears only as an optional cross-check in _common.py."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import _common
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert _common.BASELINE == REPO / "benchmarks" / "baseline.py" and _common.BASELINE.is_file()
    assert _common.CORPUS == REPO / "corpora" / "shakespeare.txt" and _common.CORPUS.is_file()
    readers = [p.name for p in (REPO / "benchmarks").rglob("*") if p.suffix in (".py", ".sh")
               and p.name != "_common.py" and re.search(r"shared/|\bTINY\b|REFERENCE", p.read_text(encoding="utf-8"))]
    assert readers == []


@pytest.mark.slow
def test_train_quality_help_starts_from_a_clone():
    """Guards against `python benchmarks/train_quality.py --help` dying with a traceback in a clone
    (it imported ../shared paths at start). Slow: one Python start with torch."""
    proc = subprocess.run([sys.executable, "benchmarks/train_quality.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "--corpus CORPUS" in proc.stdout and "--reference REFERENCE" in proc.stdout
