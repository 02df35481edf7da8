"""`chargen cells` through the CLI (exit codes, streams, JSON) and the HTML page it writes
(escaping, one coloured span per character, nothing fetched from outside, a non-blank screenshot)."""
from __future__ import annotations

import errno
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import POEM
from typer.testing import CliRunner

from chargen.cli import app
from chargen.errors import ChargenError
from chargen.study.page import (
    LEVELS,
    colour,
    levels,
    page_units,
    render_page,
    save_html,
)
from chargen.study.units import FEATURES, Activations, FeatureMatch, Match, find_units

ROOT = Path(__file__).resolve().parents[2]  # the project root


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def poem_file(tmp_path) -> Path:
    """The poem four times with three characters the model has never seen (two 'é' and one '"')."""
    path = tmp_path / "t.txt"
    path.write_text(POEM * 2 + '\u00e9"' + POEM * 2 + "\u00e9", encoding="utf-8")
    return path


# ---- the command ----

def test_json_report(trained_run, poem_file, tmp_path):
    """--json: stdout is one JSON object; characters the model never learned are kept and read as its
    unknown symbol after one warning line naming them (the report lists them too); features come in FEATURES
    order with r in [-1, 1]; 2 layers x 3 LSTM gates of saturation; the page exists."""
    page = tmp_path / "p.html"
    result = invoke("cells", trained_run.best, "--text", poem_file, "--json", "--out", page)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    total = len(POEM) * 4 + 3
    assert result.stderr == "warning: the model never learned '\u00e9', '\"'; read as its unknown symbol U+FFFD\n"
    assert (report["chars"], report["unknown"], report["cell"], report["page"]) == (total, ["\u00e9", '"'], "lstm",
                                                                                    str(page))
    features = {f["name"]: f for f in report["features"]}
    assert list(features) == list(FEATURES)
    assert features["in_quotes"]["usable"] is False and features["in_quotes"]["r"] is None
    pos = features["line_position"]
    assert pos["usable"] and len(pos["best"]) == 3 and pos["r"] == pos["best"][0]["r"]
    assert all(-1 <= m["r"] <= 1 and 0 <= m["layer"] < 2 and 0 <= m["unit"] < 16 and m["state"] in ("h", "c")
               for m in pos["best"])
    assert [(s["layer"], s["gate"]) for s in report["saturation"]] == [
        (layer, gate) for layer in (0, 1) for gate in ("input", "forget", "output")]
    assert all(0 <= s["mean_left"] + s["mean_right"] <= 1 for s in report["saturation"])
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_tables_go_to_stderr_and_default_page(trained_run, poem_file, tmp_path, monkeypatch):
    """Without --json, stdout stays empty; the tables and 'wrote cells.html' go to stderr; --max-chars caps the text."""
    monkeypatch.chdir(tmp_path)
    result = invoke("cells", trained_run.best, "--text", poem_file, "--max-chars", 120, "--offset", 5)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and "Units that track a feature" in result.stderr and "Gate saturation" in result.stderr
    assert result.stderr.endswith("wrote cells.html\n")
    spans = re.findall(r"<span class=[a-u]>", (tmp_path / "cells.html").read_text(encoding="utf-8"))
    assert len(spans) == 120


def test_unit_view_on_stderr_without_page(trained_run, poem_file, tmp_path, monkeypatch):
    """--unit shows that unit (default: top layer) on stderr and writes no page unless --out is given."""
    monkeypatch.chdir(tmp_path)
    result = invoke("cells", trained_run.best, "--text", poem_file, "--unit", 3, "--max-chars", 60, "--quiet")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and not (tmp_path / "cells.html").exists()
    assert result.stderr.startswith("layer 1 h[3]: blue -") and "Twinkle, twinkle" in result.stderr
    cell = invoke("cells", trained_run.best, "--text", poem_file, "--unit", 0, "--layer", 0, "--state", "c",
                  "--max-chars", 60, "--quiet", "--out", tmp_path / "u.html")
    assert cell.exit_code == 0 and cell.stderr.startswith("layer 0 c[0]:")
    assert "layer 0 c[0]</button>" in (tmp_path / "u.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("args,message", [
    (["--unit", 16], "error: unit 16 is out of range (hint: use --unit 0 to 15)\n"),
    (["--unit", 0, "--layer", 2], "error: layer 2 is out of range (hint: use --layer 0 to 1)\n"),
    (["--layer", 0], "error: --layer selects the layer of --unit (hint: add --unit N)\n"),
    (["--offset", 10**6], "is past the end of"),
    (["--max-chars", 0], "error: --offset must be 0 or more"),
])
def test_bad_options_exit_1(trained_run, poem_file, tmp_path, args, message):
    result = invoke("cells", trained_run.best, "--text", poem_file, "--quiet", "--out", tmp_path / "x.html", *args)
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == message if message.endswith("\n") else message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_characters_are_read_as_the_symbol_not_dropped(trained_run, tmp_path):
    """Guards against cells dropping characters the model never learned: the page shows every character
    of the text, and the units' values are those of the text with U+FFFD in their place."""
    from chargen.data.vocab import UNKNOWN
    from chargen.study.units import record
    from chargen.modelfile import load_model

    text = tmp_path / "k.txt"
    text.write_text("\ud55c\uad6d " + POEM, encoding="utf-8")  # two Hangul syllables the model never saw
    result = invoke("cells", trained_run.best, "--text", text, "--json", "--out", tmp_path / "x.html")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["chars"] == len(POEM) + 3 and report["unknown"] == ["\ud55c", "\uad6d"]
    page = (tmp_path / "x.html").read_text(encoding="utf-8")
    assert "\ud55c" in page and len(re.findall(r"<span class=[a-u]>", page)) == len(POEM) + 3  # one per character
    model, vocab, _ = load_model(trained_run.best)
    got, want = record(model, vocab, "\ud55c\uad6d " + POEM[:20]), record(model, vocab, UNKNOWN * 2 + " " + POEM[:20])
    assert got.text[0] == "\ud55c" and np.array_equal(got.states["h"], want.states["h"])


def test_missing_text_option_is_usage_error(trained_run):
    assert invoke("cells", trained_run.best).exit_code == 2


# ---- the page ----

NASTY = 'a<b&c"d\n\ud55c>\'e\n'  # (T=12) markup characters, Hangul, quotes, newlines


def nasty_activations() -> Activations:
    T = len(NASTY)
    h = np.zeros((1, T, 2))  # (L, T, H)
    h[0, :, 1] = np.linspace(-2.0, 2.0, T)
    return Activations("gru", NASTY, {"h": h})


def render(units=None) -> str:
    acts = nasty_activations()
    units = units or [("unit one", Match("h", 0, 1, 0.5)), ("unit zero", Match("h", 0, 0, 0.1))]
    return render_page(acts, find_units(acts), [], units, {"checkpoint": "<x>.pt"})


def test_page_escapes_every_character_once():
    """One span per character, in order, whose unescaped content is the character (a newline shows
    as the return mark followed by a real line break); no raw markup of the text leaks out."""
    page = render()
    pre = page.split("<pre id=text>", 1)[1].split("</pre>", 1)[0]
    cells = re.findall(r"<span class=([a-u])>(.*?)</span>(\n?)", pre)
    shown = "".join("\n" if nl else html.unescape(ch) for _, ch, nl in cells)
    assert len(cells) == len(NASTY) and shown == NASTY
    assert re.sub(r"<span class=[a-u]>.*?</span>", "", pre) == "\n\n"  # only the newlines sit outside spans
    assert "&lt;" in pre and "&amp;" in pre and "&quot;" in pre and "\ud55c" in pre
    assert "&lt;x&gt;.pt" in page and "<x>" not in page


def test_page_colours_follow_the_first_unit():
    """The spans start in the first unit's colours: linspace(-2, 2) scaled by its max |value| runs 'a' .. 'u'."""
    page = render()
    classes = "".join(re.findall(r"<span class=([a-u])>", page.split("<pre id=text>", 1)[1]))
    assert classes[0] == "a" and classes[-1] == "u" and list(classes) == sorted(classes)
    payload = json.loads(page.split("const U=", 1)[1].split(";\n", 1)[0])
    assert [u["label"] for u in payload] == ["unit one", "unit zero"]
    assert payload[0]["levels"] == classes and payload[0]["scale"] == 2.0
    assert payload[1]["levels"] == "k" * len(NASTY) and payload[1]["scale"] == 0.0  # a dead unit stays white


def test_page_is_self_contained():
    """Offline: nothing to fetch (no URL, external script, stylesheet link, font or import)."""
    page = render().lower()
    for bad in ("http://", "https://", "<script src", "<link", "@import", "url(", "@font-face"):
        assert bad not in page


def test_levels_and_colour():
    assert levels(np.array([-1.0, -0.04, 0.06, 1.0, 7.0, np.nan])) == "akluuk"
    assert colour(0) == "#ffffff" and colour(1) == "#d62f27" and colour(-1) == "#3163c4" and colour(5) == colour(1)
    assert len(LEVELS) == 21


def test_page_units_order_and_dedupe():
    """The chosen unit comes first; then each usable feature's best (strongest |r| first); no unit twice."""
    a, b, c = Match("h", 1, 4, 0.9), Match("h", 0, 2, -0.95), Match("c", 0, 1, 0.3)
    features = [FeatureMatch("pos", "", 50, 5, (a, c)), FeatureMatch("spk", "", 30, 3, (b, a)),
                FeatureMatch("quotes", "", 0, 0, ())]
    assert [m for _, m in page_units(features)] == [b, a, c]
    chosen = Match("h", 1, 4, float("nan"))
    units = page_units(features, chosen)
    assert units[0] == ("layer 1 h[4]", chosen) and [m for _, m in units[1:]] == [b, c]


def test_save_html_is_atomic(tmp_path, monkeypatch):
    """A write that fails halfway (a full disk) must leave the previous page whole and no temporary file
    behind; a write that succeeds must put the whole new page in place by one rename over the old one."""
    page = tmp_path / "p.html"
    save_html(page, "<p>old</p>")
    real_fdopen, real_replace = os.fdopen, os.replace

    class HalfThenFull:  # writes half of the text to the temporary file, then the disk is full
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "fdopen", lambda fd, *a, **k: HalfThenFull(real_fdopen(fd, *a, **k)))
        with pytest.raises(ChargenError, match="could not write .*No space left on device"):
            save_html(page, "<p>a new page</p>")
    assert page.read_text() == "<p>old</p>" and [p.name for p in tmp_path.iterdir()] == ["p.html"]

    renames = []

    def watched(src, dst):  # at the rename the old page is still whole and the new one complete beside it
        renames.append((Path(dst).read_text(), Path(src).read_text()))
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", watched)
        assert save_html(page, "<p>a new page</p>") == page
    assert renames == [("<p>old</p>", "<p>a new page</p>")]
    assert page.read_text() == "<p>a new page</p>" and [p.name for p in tmp_path.iterdir()] == ["p.html"]
    with pytest.raises(ChargenError, match="could not write"):
        save_html(tmp_path / "missing" / "p.html", "x")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs a chromium on PATH")
def test_screenshot_is_not_blank(trained_run, poem_file, tmp_path):
    """Chromium must render the page with coloured characters: the script's own checks pass and the
    PNG has many colours and both red and blue pixels."""
    page, png = tmp_path / "p.html", tmp_path / "p.png"
    assert invoke("cells", trained_run.best, "--text", poem_file, "--out", page, "--quiet").exit_code == 0
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "screenshot_cells.py"), str(page), str(png),
                           "--size", "800,2400"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith(": ok")
    import matplotlib.image as mpimg

    image = mpimg.imread(png)[..., :3]  # (2400, 800, 3): tall enough to hold the coloured text below the tables
    assert image.shape == (2400, 800, 3)
    red = (image[..., 0] - image[..., 2] > 0.3).sum()  # clearly red pixels
    blue = (image[..., 2] - image[..., 0] > 0.3).sum()
    assert red > 500 and blue > 500
