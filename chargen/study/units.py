"""Which hidden units learned something: every layer's states and gates recorded per character,
simple text features, the unit that correlates best with each, and gate saturation
(Karpathy, Johnson & Fei-Fei 2015). Plain numbers only: rendering is cells_page's and the CLI's job.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data import Vocab
from ..errors import ChargenError
from ..model import CharRNN, Hidden
from ..model.reference import GATE_NAMES, initial_state, layer_weights, run_layer

# The paper's definition: a gate is left-saturated below 0.1 and right-saturated above 0.9.
SATURATING_GATES = {"rnn": (), "lstm": ("input", "forget", "output"), "gru": ("reset", "update")}
LOW, HIGH = 0.1, 0.9
# A feature shown by fewer characters, or in fewer separate stretches, is reported absent.
MIN_SUPPORT, MIN_RUNS = 20, 2
# A speaker tag in Shakespeare: 1-4 capitalised words and ':' ("First Citizen:"), or the
# Gutenberg style of an all-caps name and '.' ("HAMLET.", "MRS. PAGE.", "1 KEEPER."), on a
# line that follows a blank line; "ACT II." and "SCENE I." headings are not speakers.
SPEAKER = re.compile(r"(?!ACT |SCENE)(?:[A-Z][A-Za-z'-]*(?: [A-Z][A-Za-z'-]*){0,3}:|[A-Z0-9][A-Z0-9' .-]*[A-Z]\.)")


@dataclass(frozen=True)
class Activations:
    """Everything one run over `text` left behind, as float64 arrays (L, T, H).

    `states` holds "h" for every cell and "c" too for an LSTM; `gates` maps each of the
    cell's GATE_NAMES to its values. `final` is the hidden state after the last character.
    """

    cell: str
    text: str
    states: dict[str, np.ndarray]
    gates: dict[str, np.ndarray] = field(default_factory=dict)
    final: Hidden | None = None

    def unit(self, state: str, layer: int, unit: int) -> np.ndarray:
        """One unit's values over the text (T,); ChargenError naming the valid range if out of it."""
        if state not in self.states:
            raise ChargenError(f"a {self.cell} has no {state!r} state", f"use one of: {', '.join(self.states)}")
        L, _, H = self.states[state].shape
        if not 0 <= layer < L:
            raise ChargenError(f"layer {layer} is out of range", f"use --layer 0 to {L - 1}")
        if not 0 <= unit < H:
            raise ChargenError(f"unit {unit} is out of range", f"use --unit 0 to {H - 1}")
        return self.states[state][layer, :, unit]


@torch.no_grad()
def record(model: CharRNN, vocab: Vocab, text: str) -> Activations:
    """Run `text` through the model from a zero state, one character at a time, keeping every
    layer's h (and c), and every gate. Eval semantics: no dropout between layers. Characters
    the model never learned are read as its unknown symbol; `text` keeps them as they are.
    A bytes model steps through the text's bytes, and the Activations' text is then
    vocab.labels(text), one character per byte (a multi-byte character at its first)."""
    if not text:
        raise ChargenError("no text to read", "pass a --text with characters the model knows")
    cell, names = model.config.cell, GATE_NAMES[model.config.cell]
    inputs = list(model.embedding(vocab.encode(text).unsqueeze(0)).unbind(1))  # T x (1, E)
    states: dict[str, list[torch.Tensor]] = {"h": [], "c": []}
    gates: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    final = []
    cfg = model.config
    for k, state in enumerate(initial_state(cell, None, cfg.num_layers, 1, cfg.hidden_size, inputs[0])):
        steps, layer_gates = run_layer(cell, inputs, state, layer_weights(model.rnn, k))
        hs = [s[0] if cell == "lstm" else s for s in steps]  # T x (1, H)
        states["h"].append(torch.cat(hs))  # (T, H)
        if cell == "lstm":
            states["c"].append(torch.cat([c for _, c in steps]))  # (T, H)
        for name in names:
            gates[name].append(torch.cat(layer_gates[name]))  # (T, H)
        final.append(steps[-1])
        inputs = hs
    hidden: Hidden
    if cell == "lstm":
        hidden = torch.stack([h for h, _ in final]), torch.stack([c for _, c in final])  # (L, 1, H) each
    else:
        hidden = torch.stack(final)  # (L, 1, H)
    as_np = {k: torch.stack(v).double().numpy() for k, v in {**states, **gates}.items() if v}  # (L, T, H)
    return Activations(cell, vocab.labels(text), {k: as_np[k] for k in states if k in as_np},
                       {k: as_np[k] for k in names}, hidden)


def in_quotes(text: str) -> np.ndarray:
    """1 while an odd number of '"' have been read (the opening quote is in, the closing one out)."""
    return (np.cumsum([c == '"' for c in text]) % 2).astype(float)


def line_position(text: str) -> np.ndarray:
    """Characters read since the last newline, counting this one; 0 at a newline."""
    out, n = np.zeros(len(text)), 0
    for t, c in enumerate(text):
        n = 0 if c == "\n" else n + 1
        out[t] = n
    return out


def bracket_depth(text: str) -> np.ndarray:
    """Open (, [ or { not yet closed after this character; a closer with nothing open is ignored."""
    out, depth = np.zeros(len(text)), 0
    for t, c in enumerate(text):
        depth = depth + 1 if c in "([{" else max(depth - 1, 0) if c in ")]}" else depth
        out[t] = depth
    return out


def line_start(text: str) -> np.ndarray:
    """1 at the first character of each line (the text's first character included), else 0."""
    return np.array([t == 0 or text[t - 1] == "\n" for t in range(len(text))], dtype=float)


def speaker_name(text: str) -> np.ndarray:
    """1 on the characters of a speaker tag line (SPEAKER after a blank line or the text's start)."""
    out, start, previous = np.zeros(len(text)), 0, ""
    for line in text.split("\n"):
        if previous == "" and SPEAKER.fullmatch(line):
            out[start: start + len(line)] = 1.0
        start, previous = start + len(line) + 1, line
    return out


FEATURES = {"in_quotes": in_quotes, "line_position": line_position, "bracket_depth": bracket_depth,
            "line_start": line_start, "speaker_name": speaker_name}


@dataclass(frozen=True)
class Match:
    """A unit of a state ("h" or "c") in a layer (0 = the layer next to the embedding), and its Pearson r."""

    state: str
    layer: int
    unit: int
    r: float


@dataclass(frozen=True)
class FeatureMatch:
    """A feature, how much of the text shows it, and the units that follow it best (strongest first).

    `support` counts characters off the feature's most common value and `runs` the separate
    stretches of them; a feature below the minimums is `usable=False` with no matches.
    """

    name: str
    description: str
    support: int
    runs: int
    matches: tuple[Match, ...]

    @property
    def usable(self) -> bool:
        return bool(self.matches)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


def correlations(columns: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson r of each column of (T, N) with feature (T,); 0 for a constant column, nan for a constant feature."""
    a = columns - columns.mean(axis=0)  # (T, N)
    f = feature - feature.mean()  # (T,)
    denom = np.sqrt((a * a).sum(axis=0) * (f @ f))  # (N,)
    if not f.any():
        return np.full(columns.shape[1], np.nan)
    return np.divide(f @ a, denom, out=np.zeros(columns.shape[1]), where=denom > 0)  # (N,)


def _support(feature: np.ndarray) -> tuple[int, int]:
    values, counts = np.unique(feature, return_counts=True)
    off = feature != values[counts.argmax()]  # (T,)
    return int(off.sum()), int(np.count_nonzero(np.diff(off.astype(int), prepend=0) == 1))


def find_units(acts: Activations, top_k: int = 3, min_support: int = MIN_SUPPORT, min_runs: int = MIN_RUNS,
               features: dict | None = None) -> list[FeatureMatch]:
    """For each feature (default FEATURES) the `top_k` units of every state and layer with the
    largest |Pearson r|, or none when fewer than `min_support` characters in `min_runs` stretches
    show it: a correlation with one quoted phrase would measure that phrase, not quoting."""
    keys: list[tuple[str, int]] = [(s, layer) for s, arr in acts.states.items() for layer in range(arr.shape[0])]
    columns = np.concatenate([acts.states[s][layer] for s, layer in keys], axis=1)  # (T, N)
    H = acts.states["h"].shape[2]
    results = []
    for name, fn in (features or FEATURES).items():
        values = fn(acts.text)  # (T,)
        support, runs = _support(values)
        matches: tuple[Match, ...] = ()
        if support >= min_support and runs >= min_runs:
            r = correlations(columns, values)  # (N,)
            order = np.argsort(-np.abs(r), kind="stable")[:top_k]
            matches = tuple(Match(keys[i // H][0], keys[i // H][1], int(i % H), float(r[i])) for i in order)
        results.append(FeatureMatch(name, (fn.__doc__ or "").strip(), support, runs, matches))
    return results


@dataclass(frozen=True)
class Saturation:
    """Per unit, the fraction of characters a gate spent below LOW (`left`) and above HIGH (`right`), (H,) each."""

    layer: int
    gate: str
    left: np.ndarray
    right: np.ndarray

    def summary(self, often: float = 0.5, rarely: float = 0.1) -> dict:
        """Means over units, and the fraction of units saturated on one side more than `often` of
        the time, or (both sides together) less than `rarely` of the time."""
        return {"layer": self.layer, "gate": self.gate, "mean_left": float(self.left.mean()),
                "mean_right": float(self.right.mean()),
                "units_mostly_left": float((self.left > often).mean()),
                "units_mostly_right": float((self.right > often).mean()),
                "units_rarely_saturated": float((self.left + self.right < rarely).mean())}


def gate_saturation(acts: Activations) -> list[Saturation]:
    """Saturation of every sigmoid gate (LSTM input, forget, output; GRU reset, update) in every layer."""
    out = []
    for gate in SATURATING_GATES[acts.cell]:
        values = acts.gates[gate]  # (L, T, H)
        for layer in range(values.shape[0]):
            out.append(Saturation(layer, gate, (values[layer] < LOW).mean(axis=0),
                                  (values[layer] > HIGH).mean(axis=0)))
    return sorted(out, key=lambda s: s.layer)
