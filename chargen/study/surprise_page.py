"""The page of `chargen eval --html`: a text coloured by each character's loss under a model, with
the probability of the right character on hover, the worst-predicted spans, a legend and the mean
loss. One offline HTML file: inline CSS, no script, no fonts or images fetched.
"""
from __future__ import annotations

import html
import math
import os
from pathlib import Path

from ..data.records import RECORD_END
from ..errors import ChargenError
from .page import save_html
from .surprise import Surprise, score_characters, worst_spans

TOP = 6.0  # nats at which the colour saturates (p = 0.0025): rarer guesses all look alike
STEPS = 12  # colour buckets of TOP / STEPS nats, plus one for the unscored first character
CSS = """body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#222}
pre{white-space:pre-wrap;word-wrap:break-word;font:14px/1.45 ui-monospace,Menlo,Consolas,monospace;
border:1px solid #ccc;padding:1em;border-radius:4px}
pre span:hover{outline:1px solid #000}
.legend span{display:inline-block;width:3.2em;text-align:center;font:12px monospace;padding:2px 0}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}td.n{text-align:right}
code.span{white-space:pre;background:#f4f4f4;padding:1px 4px}
.end{color:#888}
"""


def colour(bucket: int) -> str:
    """White at 0 nats through yellow to red at TOP and beyond (bucket STEPS)."""
    t = bucket / STEPS
    return f"hsl({60 * (1 - t):.0f},100%,{100 - 50 * t:.0f}%)"


def bucket_of(loss: float) -> int:
    return min(STEPS, int(loss / TOP * STEPS)) if math.isfinite(loss) else -1


def render(surprise: Surprise, title: str, model_name: str) -> str:
    """The whole page as one string."""
    styles = "".join(f".b{i}{{background:{colour(i)}}}" for i in range(STEPS + 1)) + ".bn{background:#ddd}"
    unit = surprise.unit
    bits = surprise.mean_loss / math.log(2)
    cut = f" (only its first {sum(surprise.units):,} {unit}s)" if surprise.truncated else ""
    how = "each record from a zero state, as it was trained" if surprise.records else \
        "one stream, the state carried from its first character"
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>",
             f"<style>{CSS}{styles}</style></head><body>",
             f"<h1>Where {html.escape(model_name)} is surprised</h1>",
             f"<p>Text: {html.escape(title)}{cut}, {len(surprise.chars):,} characters, read {how}.<br>",
             (f"Mean loss <b>{surprise.mean_loss:.4f} nats per {unit}</b> ({bits:.4f} bits). "
              "Each character is coloured by its loss, -ln p, where p is the probability the model gave it "
              "(for a bytes model: all of its bytes); hover for p.</p>"), _legend(), _worst(surprise),
             "<h2>Text</h2><pre>"]
    parts += [_span(i, ch, loss, n, unit) for i, (ch, loss, n) in
              enumerate(zip(surprise.chars, surprise.losses, surprise.units))]
    parts.append("</pre></body></html>\n")
    return "".join(parts)


def _legend() -> str:
    cells = [f'<span class=b{i}>{i * TOP / STEPS:g}</span>' for i in range(0, STEPS + 1, 2)]
    probs = ", ".join(f"{n:g} nat{'s' * (n != 1)} = p {math.exp(-n):.2g}" for n in (1, 2, 4, 6))
    return (f'<p class=legend>Loss in nats: {"".join(cells)}<span class=bn>none</span><br>'
            f'<small>{probs}; {TOP:g} and beyond share the reddest colour; grey: nothing predicted it '
            f'(the first character).</small></p>')


def _worst(surprise: Surprise) -> str:
    rows = []
    for start, mean in worst_spans(surprise):
        text = "".join(_shown(c) for c in surprise.chars[start: start + 8])
        rows.append(f'<tr><td><a href="#c{start}">character {start:,}</a></td><td><code class=span>'
                    f'{html.escape(text)}</code></td><td class=n>{mean:.2f}</td></tr>')
    return ("<h2>Worst-predicted spans</h2><table><tr><th>where</th><th>8 characters</th>"
            f"<th>mean loss (nats)</th></tr>{''.join(rows)}</table>")


def _shown(ch: str) -> str:
    return {"\n": "\u21b5", "\t": "\u2192", RECORD_END: "\u241e"}.get(ch, ch)


def _span(i: int, ch: str, loss: float, units: int, unit: str) -> str:
    b = bucket_of(loss)
    if b < 0:
        tip = "no prediction: the first character"
    else:
        of = f" (its {units} {unit}s)" if units > 1 else ""
        tip = f"{_shown(ch)!r}: p = {math.exp(-loss):.3g}{of}, loss {loss:.2f} nats"
    text = html.escape("\u241e\n" if ch == RECORD_END else ch)
    return f'<span id=c{i} class=b{"n" if b < 0 else b} title="{html.escape(tip)}">{text}</span>'


def write_surprise(surprise: Surprise, out: str | os.PathLike, title: str, model_name: str,
               keep: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Write the page to `out` (UTF-8). ChargenError when it cannot be written, or when `out` is
    one of the files in `keep` (the text scored, the model): those are never overwritten."""
    out = Path(out)
    if any(out.resolve() == Path(k).resolve() for k in keep):
        raise ChargenError(f"{out} is the text or model being scored", "pass --html a new file name, e.g. page.html")
    return save_html(out, render(surprise, title, model_name), "pass --html a path in a writable folder")


def surprise_page(model, vocab, scored, device, out: str | os.PathLike, title: str, model_name: str,
                  keep: tuple[str | os.PathLike, ...] = ()) -> Path:
    """Score `scored` (a stream's ids or a RecordSet: surprise.score_characters) and write its page to `out`."""
    return write_surprise(score_characters(model, vocab, scored, device), out, title, model_name, keep)
