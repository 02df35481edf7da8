"""chargen.units: the text features, the recorded activations, the unit search and gate saturation.

Model sizes are tiny and all different (T=9, E=5, H=6, V=7) so a swapped dimension fails.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chargen.data.vocab import Vocab
from chargen.errors import ChargenError
from chargen.model.charrnn import CELLS, CharRNN, ModelConfig
from chargen.model.reference import trace
from chargen.study.units import (
    FEATURES,
    Activations,
    Match,
    bracket_depth,
    correlations,
    find_units,
    gate_saturation,
    in_quotes,
    line_position,
    line_start,
    record,
    speaker_name,
)

E, H = 5, 6
VOCAB = Vocab(tuple(sorted('\n "()ab')))  # V = 7
TEXT = 'ab "a(b)"\nba'  # T = 12
PROPS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def tiny_model(cell: str, layers: int = 2) -> CharRNN:
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=len(VOCAB), cell=cell, num_layers=layers, hidden_size=H,
                                embedding_dim=E, dropout=0.0)).eval()
    with torch.no_grad():  # move every bias off its init so a dropped bias shows
        for p in model.rnn.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


# ---- features ----

def test_in_quotes_toggles_on_each_quote():
    """The opening quote is inside, the closing quote outside: the state after reading each character."""
    assert in_quotes('a"bc"d"e').tolist() == [0, 1, 1, 1, 0, 0, 1, 1]


def test_line_position_resets_at_newline():
    """Guards against an off-by-one: 0 at the newline itself, 1 at the next line's first character."""
    assert line_position("ab\ncd\n\ne").tolist() == [1, 2, 0, 1, 2, 0, 0, 1]


def test_bracket_depth_nests_and_ignores_unmatched_closers():
    """Nested ( and [ add up; a ')' with nothing open must not push the depth below 0."""
    assert bracket_depth("a(b[c]d)e)f(").tolist() == [0, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1]


def test_line_start_marks_first_character_of_each_line():
    assert line_start("ab\ncd\n\ne").tolist() == [1, 0, 0, 1, 0, 0, 1, 1]


def test_speaker_name_needs_a_blank_line_before_it():
    """A tag is a capitalised name and ':' (or an all-caps name and '.') after a blank line; a line of
    dialogue that happens to look like one ("O God:" right after a tag) is not a speaker, nor an act heading."""
    text = "First Citizen:\nWe hate alike:\n\nHAMLET.\nO God:\n\nnot a name:\n\nHello there:\n\nACT II.\n\nMRS. PAGE.\n"
    want = np.zeros(len(text))
    for tag in ("First Citizen:", "HAMLET.", "MRS. PAGE."):
        start = text.index(tag)
        want[start: start + len(tag)] = 1
    assert speaker_name(text).tolist() == want.tolist()


@PROPS
@given(st.text(alphabet='ab "()[]{}\n', max_size=60))
def test_feature_invariants(text):
    """Every feature gives one float per character; line position is 0 exactly at newlines and
    otherwise grows by one; quotes change only at '"'; the bracket depth moves by at most one."""
    for fn in FEATURES.values():
        assert fn(text).shape == (len(text),)
    pos, quotes, depth = line_position(text), in_quotes(text), bracket_depth(text)
    for t, c in enumerate(text):
        before = pos[t - 1] if t else 0
        assert pos[t] == (0 if c == "\n" else before + 1)
        assert (quotes[t] != (quotes[t - 1] if t else 0)) == (c == '"')
        assert depth[t] >= 0 and abs(depth[t] - (depth[t - 1] if t else 0)) <= 1


# ---- recording ----

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_record_matches_torch(cell):
    """Every layer's h must equal torch's own nn.RNN/LSTM/GRU (layer 0 rerun alone with its weights),
    the final state must equal CharRNN.forward's, and the gates must equal cells.trace's."""
    model = tiny_model(cell)
    ids = VOCAB.encode(TEXT).unsqueeze(0)  # (1, T)
    acts = record(model, VOCAB, TEXT)
    T = len(TEXT)
    assert acts.states["h"].shape == (2, T, H) and set(acts.states) == ({"h", "c"} if cell == "lstm" else {"h"})
    with torch.no_grad():
        emb = model.embedding(ids)  # (1, T, E)
        top, hidden = model.rnn(emb)  # (1, T, H)
        first = CELLS[cell](E, H, 1, batch_first=True)
        first.load_state_dict({k: v for k, v in model.rnn.state_dict().items() if "_l0" in k})
        bottom, _ = first(emb)  # (1, T, H)
        gates = trace(model.rnn, cell, emb).gates
    np.testing.assert_allclose(acts.states["h"][1], top[0].numpy(), atol=1e-5)
    np.testing.assert_allclose(acts.states["h"][0], bottom[0].numpy(), atol=1e-5)
    finals = hidden if cell == "lstm" else (hidden,)
    got = acts.final if cell == "lstm" else (acts.final,)
    for want, have in zip(finals, got):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-5)
    if cell == "lstm":
        np.testing.assert_allclose(acts.states["c"][:, -1], hidden[1][:, 0].numpy(), atol=1e-5)
    for name, values in gates.items():
        np.testing.assert_allclose(acts.gates[name], values[:, 0].detach().numpy(), atol=1e-6)


def test_record_rejects_empty_text():
    with pytest.raises(ChargenError, match="no text"):
        record(tiny_model("gru"), VOCAB, "")


def test_unit_range_error_names_valid_range():
    acts = record(tiny_model("gru"), VOCAB, TEXT)
    with pytest.raises(ChargenError) as e:
        acts.unit("h", 1, H)
    assert e.value.message == f"unit {H} is out of range" and e.value.hint == f"use --unit 0 to {H - 1}"
    with pytest.raises(ChargenError) as e:
        acts.unit("h", 2, 0)
    assert e.value.hint == "use --layer 0 to 1"
    with pytest.raises(ChargenError, match="no 'c' state"):
        acts.unit("c", 0, 0)


# ---- search ----

def test_correlations_match_numpy_and_handle_constants():
    rng = np.random.default_rng(0)
    cols, f = rng.normal(size=(40, 5)), rng.normal(size=40)
    cols[:, 3] = 2.0  # a dead unit
    r = correlations(cols, f)
    want = [np.corrcoef(cols[:, j], f)[0, 1] for j in (0, 1, 2, 4)]
    np.testing.assert_allclose(r[[0, 1, 2, 4]], want, atol=1e-12)
    assert r[3] == 0
    assert np.isnan(correlations(cols, np.ones(40))).all()


def planted(text: str, rng) -> Activations:
    T = len(text)
    h, c = rng.normal(size=(2, T, H)), rng.normal(size=(2, T, H))  # (L, T, H) noise
    h[1, :, 4] = line_position(text) / 10 + 0.05 * rng.normal(size=T)  # layer 1 h[4] counts columns
    c[0, :, 2] = -speaker_name(text) + 0.1 * rng.normal(size=T)  # layer 0 c[2] is off on speaker tags
    return Activations("lstm", text, {"h": h, "c": c})


def test_find_units_finds_planted_units():
    """The search must return the planted (state, layer, unit) of each feature with |r| > 0.9, keep
    the sign of a negative correlation, and rank units by |r|."""
    text = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
            "JULIET:\nAy me!\n\nFirst Citizen:\nSpeak, speak.\n\n") * 4
    found = {f.name: f for f in find_units(planted(text, np.random.default_rng(1)), top_k=4)}
    pos, speaker = found["line_position"].best, found["speaker_name"].best
    assert (pos.state, pos.layer, pos.unit) == ("h", 1, 4) and pos.r > 0.9
    assert (speaker.state, speaker.layer, speaker.unit) == ("c", 0, 2) and speaker.r < -0.9
    rs = [abs(m.r) for m in found["line_position"].matches]
    assert len(rs) == 4 and rs == sorted(rs, reverse=True)


def test_rare_or_missing_features_are_absent_not_bogus():
    """No quotes at all, or one quoted stretch, must give no match (usable False), not a correlation."""
    rng = np.random.default_rng(2)
    text = "a plain line\n" * 10 + '"a quoted stretch, 35 characters in"' + "\nmore\n" * 5
    found = {f.name: f for f in find_units(planted(text, rng), min_support=20, min_runs=2)}
    quotes, brackets = found["in_quotes"], found["bracket_depth"]
    # The closing quote is outside.
    assert (quotes.support, quotes.runs, quotes.usable, quotes.best) == (35, 1, False, None)
    assert (brackets.support, brackets.runs, brackets.matches) == (0, 0, ())
    assert found["line_position"].usable


# ---- gate saturation ----

def test_gate_saturation_exact_fractions():
    """Strict thresholds (0.1 and 0.9 themselves are not saturated); only the sigmoid gates count."""
    reset = np.array([[[0.05, 0.5, 0.99, 0.1], [0.05, 0.5, 0.99, 0.9], [0.5, 0.5, 0.99, 0.05],
                       [0.95, 0.5, 0.99, 0.95]]])  # (L=1, T=4, H=4)
    acts = Activations("gru", "abcd", {"h": np.zeros((1, 4, 4))},
                       {"reset": reset, "update": 1 - reset, "new": np.zeros((1, 4, 4))})
    sat = gate_saturation(acts)
    assert [(s.layer, s.gate) for s in sat] == [(0, "reset"), (0, "update")]
    np.testing.assert_allclose(sat[0].left, [0.5, 0, 0, 0.25])
    np.testing.assert_allclose(sat[0].right, [0.25, 0, 1, 0.25])
    np.testing.assert_allclose(sat[1].left[:3], sat[0].right[:3])  # 1 - x mirrors the sides (off the boundaries)
    d = sat[0].summary()
    assert d["mean_left"] == pytest.approx(0.75 / 4) and d["mean_right"] == pytest.approx(1.5 / 4)
    assert (d["units_mostly_left"], d["units_mostly_right"], d["units_rarely_saturated"]) == (0.0, 0.25, 0.25)


def test_gate_saturation_gates_per_cell():
    """LSTM: input, forget, output per layer (not the tanh candidate); a plain RNN has none."""
    lstm = record(tiny_model("lstm"), VOCAB, TEXT)
    assert [(s.layer, s.gate) for s in gate_saturation(lstm)] == [
        (0, "input"), (0, "forget"), (0, "output"), (1, "input"), (1, "forget"), (1, "output")]
    assert gate_saturation(record(tiny_model("rnn", 1), VOCAB, TEXT)) == []
    s = gate_saturation(lstm)[1]
    assert s.left.shape == (H,) and ((s.left + s.right) <= 1).all()


def test_match_is_plain_data():
    assert Match("h", 0, 1, 0.5) == Match("h", 0, 1, 0.5)
