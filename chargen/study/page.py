"""The self-contained HTML page of `chargen cells`: the text coloured by one unit at a time, a
picker for the units the search found, the feature and gate-saturation tables.

No external scripts, fonts or styles: the page works offline. It computes nothing about the
model (units.py does); it only turns those numbers into HTML and writes the file atomically.
"""
from __future__ import annotations

import html
import json
import math
from typing import Any, cast
import os
from pathlib import Path

import numpy as np

from ..errors import ChargenError
from ..fileio import atomic_write
from .units import HIGH, LOW, MIN_RUNS, MIN_SUPPORT, Activations, FeatureMatch, Match, Saturation

LEVELS = "abcdefghijklmnopqrstu"  # 21 colour classes: -1, -0.9, ..., +1 of a unit's scale
NEGATIVE, POSITIVE = (49, 99, 196), (214, 47, 39)  # blue below zero, red above, white at zero

CSS = """body { font: 15px/1.45 system-ui, sans-serif; max-width: 1150px; margin: 1.5em auto; padding: 0 1em;
  color: #222; background: #fff }
h1 { font-size: 1.4em } h2 { font-size: 1.15em; margin-top: 1.6em } .meta { color: #555 }
table { border-collapse: collapse; margin: .4em 0 }
th, td { padding: .2em .7em; border-bottom: 1px solid #ddd; text-align: right; white-space: nowrap }
th { background: #f3f3f3; text-align: left } td:first-child, td.left { text-align: left; white-space: normal }
.absent { color: #888 }
#picker button { margin: .15em; font: 13px ui-monospace, Menlo, Consolas, monospace; border: 1px solid #aaa;
  background: #f6f6f6; border-radius: 3px; padding: .2em .5em; cursor: pointer }
#picker button.on { background: #333; color: #fff; border-color: #333 }
#legend .sw { display: inline-block; width: 1.4em; height: 1em; vertical-align: middle;
  border-top: 1px solid #ccc; border-bottom: 1px solid #ccc }
#info { font-family: ui-monospace, monospace; color: #444; min-height: 1.4em }
#text { font: 14px/1.55 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap; word-break: break-all;
  border: 1px solid #ccc; padding: .7em; margin: 0 }
"""

# U (embedded JSON) holds per unit a label, a scale and one colour-class letter per character;
# switching units rewrites the spans' classes, and #N in the address opens unit N.
SCRIPT = """const text = document.getElementById('text'), spans = text.children;
const buttons = document.querySelectorAll('#picker button');
let cur = 0;
function show(i) {
  cur = i; const u = U[i];
  for (let t = 0; t < spans.length; t++) spans[t].className = u.levels[t];
  buttons.forEach((b, j) => b.classList.toggle('on', j === i));
  document.getElementById('lo').textContent = (-u.scale).toFixed(2);
  document.getElementById('hi').textContent = '+' + u.scale.toFixed(2);
  document.getElementById('unit').textContent = u.label;
}
const start = parseInt(location.hash.slice(1)); if (start >= 0 && start < U.length) show(start);
document.getElementById('picker').addEventListener('click', e => {
  const b = e.target.closest('button'); if (b) show(+b.dataset.u); });
text.addEventListener('mouseover', e => {
  if (e.target.parentNode !== text) return;
  const t = Array.prototype.indexOf.call(spans, e.target), u = U[cur];
  const v = (u.levels.charCodeAt(t) - 107) / 10 * u.scale;  // 'k' (107) is zero
  document.getElementById('info').textContent = 'character ' + t + ' ' + JSON.stringify(e.target.textContent)
    + ': about ' + v.toFixed(2);
});
"""


def colour(x: float) -> str:
    """Background for a value in [-1, 1] (clipped): blue for negative, white at 0, red for positive."""
    x = min(max(float(x), -1.0), 1.0)
    end = POSITIVE if x > 0 else NEGATIVE
    rgb = (round(255 + (e - 255) * abs(x)) for e in end)
    return "#" + "".join(f"{c:02x}" for c in rgb)


def scaled(values: np.ndarray) -> tuple[np.ndarray, float]:
    """Values divided by their largest magnitude (so a weak unit still shows), and that scale."""
    scale = float(np.abs(values).max()) if values.size else 0.0
    return (values / scale if scale > 0 else np.zeros_like(values)), scale


def levels(values: np.ndarray) -> str:
    """One colour-class letter per character, from values already in [-1, 1] (nan shows as 0)."""
    idx = np.rint((np.clip(np.nan_to_num(values), -1, 1) + 1) * 10).astype(int)  # (T,) 0..20
    return "".join(LEVELS[i] for i in idx)


def label(m: Match, feature: str | None = None) -> str:
    where = f"layer {m.layer} {m.state}[{m.unit}]"
    return f"{feature}: {where} r={m.r:+.2f}" if feature else where


def page_units(features: list[FeatureMatch], chosen: Match | None = None) -> list[tuple[str, Match]]:
    """Units for the picker, first one shown: `chosen` if given, then the best unit of each usable
    feature (strongest |r| first), then the runners-up; a unit appears once."""
    usable = sorted((f for f in features if f.usable), key=lambda f: -abs(cast(Match, f.best).r))
    ranked = [(f.name, cast(Match, f.best)) for f in usable] + [(f.name, m) for f in usable for m in f.matches[1:]]
    out: list[tuple[str, Match]]
    out, seen = ([(label(chosen), chosen)], {(chosen.state, chosen.layer, chosen.unit)}) if chosen else ([], set())
    for name, m in ranked:
        if (m.state, m.layer, m.unit) not in seen:
            seen.add((m.state, m.layer, m.unit))
            out.append((label(m, name), m))
    return out


def _text_spans(text: str, first: str) -> str:
    parts = []
    for ch, lv in zip(text, first):
        parts.append(f"<span class={lv}>\u21b5</span>\n" if ch == "\n"
                     else f"<span class={lv}>{html.escape(ch)}</span>")
    return "".join(parts)


def _level_css() -> str:
    return "".join(f"#text .{c},#legend .{c}"
                   f"{{background:{colour(i / 10 - 1)}{';color:#fff' if abs(i - 10) > 6 else ''}}}"
                   for i, c in enumerate(LEVELS)) + "\n"


def _feature_table(features: list[FeatureMatch], min_support: int, min_runs: int) -> str:
    rows = ["<tr><th>feature</th><th>definition</th><th>chars showing it</th><th>best unit</th><th>r</th>"
            "<th>runners-up</th></tr>"]
    for f in features:
        head = f"<td>{f.name}</td><td class=left>{html.escape(f.description)}</td><td>{f.support} in {f.runs}</td>"
        if not f.usable:
            rows.append(f"<tr class=absent>{head}<td colspan=3 class=left>absent: needs {min_support} characters "
                        f"in {min_runs} stretches</td></tr>")
            continue
        others = ", ".join(f"{label(m)} ({m.r:+.2f})" for m in f.matches[1:])
        best = cast(Match, f.best)  # a usable feature has one
        rows.append(f"<tr>{head}<td>{label(best)}</td><td>{best.r:+.3f}</td><td class=left>{others}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _saturation_table(saturation: list[Saturation]) -> str:
    if not saturation:
        return "<p>This cell has no gates.</p>"
    rows = [f"<tr><th>layer</th><th>gate</th><th>mean time &lt; {LOW}</th><th>mean time &gt; {HIGH}</th>"
            "<th>units &lt; 0.1 over half the time</th><th>units &gt; 0.9 over half the time</th>"
            "<th>units saturated under 10% of the time</th></tr>"]
    for s in saturation:
        d = s.summary()
        rows.append(f"<tr><td>{d['layer']}</td><td class=left>{d['gate']}</td>" + "".join(
            f"<td>{d[k]:.1%}</td>" for k in ("mean_left", "mean_right", "units_mostly_left",
                                               "units_mostly_right", "units_rarely_saturated")) + "</tr>")
    return "<table>" + "".join(rows) + "</table>"


def render_page(acts: Activations, features: list[FeatureMatch], saturation: list[Saturation],
                units: list[tuple[str, Match]], meta: dict[str, object], min_support: int = MIN_SUPPORT,
                min_runs: int = MIN_RUNS) -> str:
    """The whole page as one string; `units[0]` is the unit the text is coloured by at first."""
    if not units:
        raise ChargenError("no unit to show on the page", "pass --unit N or a longer --text")
    data: list[dict[str, Any]] = []
    for name, m in units:
        values, scale = scaled(acts.unit(m.state, m.layer, m.unit))
        data.append({"label": name, "scale": scale if math.isfinite(scale) else 0.0, "levels": levels(values)})
    buttons = "".join(f"<button data-u={i}{' class=on' if i == 0 else ''}>{html.escape(d['label'])}</button>"
                      for i, d in enumerate(data))
    swatches = "".join(f"<span class='sw {c}'></span>" for c in LEVELS)
    info = " &middot; ".join(f"{html.escape(k)}: {html.escape(str(v))}" for k, v in meta.items())
    payload = json.dumps(data).replace("</", "<\\/")
    return (f"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>chargen cells</title>"
            f"<style>{CSS}{_level_css()}</style></head><body>\n"
            f"<h1>Which cells learned something</h1><p class=meta>{info}</p>\n"
            f"<h2>Units that track a feature (Pearson r over {len(acts.text)} characters)</h2>\n"
            f"{_feature_table(features, min_support, min_runs)}\n"
            f"<h2>The text coloured by <span id=unit>{html.escape(data[0]['label'])}</span></h2>\n"
            f"<div id=picker>{buttons}</div>\n"
            f"<p id=legend><span id=lo>{-data[0]['scale']:.2f}</span> {swatches} <span id=hi>+{data[0]['scale']:.2f}"
            f"</span> &nbsp;(the state after reading each character; &#8629; marks a newline)</p>\n"
            f"<p id=info>hover a character to read its value</p>\n"
            f"<pre id=text>{_text_spans(acts.text, data[0]['levels'])}</pre>\n"
            f"<h2>Gate saturation (left: value &lt; {LOW}, right: &gt; {HIGH})</h2>\n"
            f"{_saturation_table(saturation)}\n"
            f"<script>const U={payload};\n{SCRIPT}</script>\n</body></html>\n")


def save_html(path: str | os.PathLike, page: str, hint: str = "choose a writable --out path") -> Path:
    """Write the page whole or not at all (fileio.atomic_write), so a reader never sees half of it;
    ChargenError with `hint` when it cannot be written."""
    path = Path(path)
    try:
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(page)
    except OSError as e:
        raise ChargenError(f"could not write {path}: {e.strerror or e}", hint) from None
    return path
