"""docs/understanding.md promises the same gradient-flow figures on any machine: each documented
command is run as written and its figures are compared with the page's, digit for digit. Guards
against a page whose seeded figures silently stopped coming out (an initialisation or a
reference-cell change)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargen.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "understanding.md"
pytestmark = pytest.mark.slow  # each runs models of 2 x 256 over 200 steps: about 5 to 20 s of CPU


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"### {title}\n")
    end = text.find("\n### ", start + 1)
    return text[start: end if end > 0 else None]


def _command(section: str, starts: str) -> list[str]:
    """The first backticked `chargen ...` command in `section` that starts with `starts`, as arguments."""
    for found in re.findall(r"`(chargen [^`]+)`", section, flags=re.DOTALL):
        words = found.split()
        if " ".join(words).startswith(starts):
            return words[1:]
    raise AssertionError(f"no command starting {starts!r} in the section")


def _run(args: list[str], tmp_path: Path, monkeypatch) -> str:
    """Run documented arguments from the repository root, a --plot sent to tmp_path; stderr back."""
    monkeypatch.chdir(ROOT)
    if "--plot" in args:
        i = args.index("--plot")
        args = [*args[:i], "--plot", str(tmp_path / "figure.png"), *args[i + 2:]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    return result.stdout if "--json" in args else result.stderr


def _sci(x: float) -> str:
    return "0" if x == 0 else f"{x:.2e}"


def test_the_untrained_cells_table_comes_out_as_printed(tmp_path, monkeypatch):
    section = _section("Untrained cells all vanish")
    printed = re.search(r"```\n(.*?)```", section, flags=re.DOTALL).group(1)
    out = _run(_command(section, "chargen gradflow --fresh --cells rnn,lstm,gru"), tmp_path, monkeypatch)
    got = [line.rstrip() for line in out.splitlines() if not line.startswith("wrote ")]
    assert got == [line.rstrip() for line in printed.splitlines()]


def test_the_trained_and_untrained_gru_rows_come_out_as_printed(tmp_path, monkeypatch):
    section = _section("A trained GRU keeps its gradient")
    rows = re.findall(r"^\| (\d+) \| (\S+) \| (\S+) \|$", section, flags=re.MULTILINE)
    assert len(rows) >= 5
    trained_args = _command(section, "chargen gradflow checkpoints/shakespeare-gru/best.pt")
    (trained,) = json.loads(_run([*trained_args, "--json"], tmp_path, monkeypatch))
    fresh_args = ["gradflow", "--fresh", "--cells", "gru", *trained_args[2:], "--json"]
    (fresh,) = json.loads(_run(fresh_args, tmp_path, monkeypatch))
    for k, untrained_ratio, trained_ratio in rows:
        k = int(k)
        assert (_sci(fresh["norms"][k] / fresh["norms"][0]), _sci(trained["norms"][k] / trained["norms"][0])) == \
            (untrained_ratio, trained_ratio), k
    horizon = re.search(r"^\| horizon \(< 1e-3\) \| (\d+) \| (.+) \|$", section, flags=re.MULTILINE)
    assert horizon.group(1) == str(fresh["horizon"])
    assert horizon.group(2) == ("none within 200" if trained["horizon"] is None else str(trained["horizon"]))


def test_the_gated_cells_at_recurrent_scale_3_come_out_as_printed(tmp_path, monkeypatch):
    section = " ".join(_section("Exploding gradients, and what clipping does about them").split())
    claim = re.search(r"a fresh LSTM reaches ([\d.]+)x at k = 200 and a fresh GRU still vanishes, to ([\d.e+-]+)",
                      section)
    args = _command(section, "chargen gradflow --fresh --cells lstm,gru --recurrent-scale 3")
    lstm, gru = json.loads(_run([*args, "--json"], tmp_path, monkeypatch))
    assert (f"{lstm['ratio_last_first']:.3g}", _sci(gru["ratio_last_first"])) == claim.groups()


def test_the_exploding_rnn_is_clipped_as_printed(tmp_path, monkeypatch):
    """The chaotic figures may differ by machine; what clipping does to them may not."""
    section = _section("Exploding gradients, and what clipping does about them")
    args = _command(section, "chargen gradflow --fresh --cells rnn --recurrent-scale 3")
    (rnn,) = json.loads(_run([*args, "--json"], tmp_path, monkeypatch))
    printed = dict(re.findall(r"^\| (after clipping at 1|cosine before/after) \| (\S+) \|$", section,
                              flags=re.MULTILINE))
    assert printed == {"after clipping at 1": f"{rnn['clip']['clipped_norm']:.3e}",
                       "cosine before/after": f"{rnn['clip']['cosine']:.6f}"}
    assert rnn["ratio_last_first"] > 1e3  # it explodes, whatever the machine
