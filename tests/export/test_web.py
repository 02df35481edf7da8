"""web.py and page.html: the exported page generates what chargen generates, run in headless Chromium.

The page is read back with --dump-dom after its own autorun (settings in the URL's #fragment).
--virtual-time-budget lets the page's streaming slices run to the end before the dump; it also
puts the page on a virtual clock, so no speed is checked here (benchmarks/web_speed.py does that).
"""
from __future__ import annotations

import base64
import copy
import html
import json
import math
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from chargen import ChargenError, CharRNN, ModelConfig, SampleConfig, Vocab, generate
from chargen.export.web import model_spec, write_page
from chargen.sample.sampler import start_ids

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome on the PATH to run the exported page "
                             "(Debian: apt-get install -y chromium)")

TEXT = ("The cat sat on the mat; then the rat ran to the hat.\n"
        "The end <of> the tale: the dog ate the net.\n") * 12  # 1164 characters, 22 distinct; "<" tests escaping
SHAPES = {"rnn": (1, 7, 19), "lstm": (2, 6, 22), "gru": (2, 9, 17)}  # (num_layers, embedding_dim, hidden_size)
ABOUT = {"corpus": "a tiny test text", "cell": "varies"}


def train_tiny(cell: str, vocab: Vocab, shape: tuple[int, int, int] | None = None) -> CharRNN:
    """60 Adam steps on TEXT from a fixed seed: enough that the greedy text is no longer one repeated character.
    `shape` is (num_layers, embedding_dim, hidden_size), SHAPES[cell] when None."""
    torch.manual_seed(0)
    layers, emb, hidden = shape or SHAPES[cell]
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell=cell, num_layers=layers, hidden_size=hidden,
                                embedding_dim=emb, dropout=0.0))
    ids = vocab.encode(TEXT)  # (N,)
    opt = torch.optim.Adam(model.parameters(), lr=0.04)
    for _ in range(60):
        starts = torch.randint(0, len(ids) - 25, (5,)).tolist()
        batch = torch.stack([ids[s: s + 25] for s in starts])  # (B, T+1)
        logits, _ = model(batch[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[CharRNN, Vocab, Path]]:
    folder = tmp_path_factory.mktemp("web")
    vocab = Vocab.from_text(TEXT)
    out = {}
    for cell in SHAPES:
        model = train_tiny(cell, vocab)
        write_page(model, vocab, folder / f"{cell}.html", f"tiny {cell}", ABOUT)
        out[cell] = (model, vocab, folder / f"{cell}.html")
    return out


def run_page(page: Path, flags: tuple[str, ...] = (), **settings) -> tuple[str, dict[str, str]]:
    """The text in the page's #output after an autorun with `settings` in a Chromium started with the
    extra command-line `flags`, and #output's attributes."""
    fragment = "&".join(f"{k}={urllib.parse.quote(str(v), safe='')}" for k, v in settings.items())
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={page.parent / 'profile'}", *flags,
           "--virtual-time-budget=600000", "--dump-dom", f"{page.as_uri()}#{fragment}&autorun=1"]
    # No check: a crash shows as a missing #output below. Bytes, decoded here: every \r kept.
    dom = subprocess.run(cmd, check=False, capture_output=True, timeout=120).stdout.decode("utf-8")
    found = re.search(r'<pre id="output"([^>]*)>(.*?)</pre>', dom, re.DOTALL)
    assert found, f"no #output in the dumped page: {dom[:300]!r}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', found.group(1)))
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(2))), attrs


def chargen_text(model: CharRNN, vocab: Vocab, **cfg) -> str:
    """What `chargen sample` prints: the prime, then the generated characters."""
    sample = SampleConfig(**cfg)
    return sample.prime + "".join(generate(model, vocab, sample, "cpu"))


def page_random(seed: int):
    """The page's generator (randomSource in page.html), written again: a Weyl sequence through a mixer."""
    state, mask = ((seed % 2**32) ^ (seed // 2**32)) & 0xFFFFFFFF, 0xFFFFFFFF
    while True:
        state = (state + 0x9E3779B9) & mask
        z = state
        z = ((z ^ (z >> 16)) * 0x85EBCA6B) & mask
        z = ((z ^ (z >> 13)) * 0xC2B2AE35) & mask
        yield (z ^ (z >> 16)) / 2**32


def reference_draws(model: CharRNN, vocab: Vocab, prime: str, temperature: float, seed: int, length: int) -> str:
    """The page's sampling written again over a float64 copy of the model: softmax(logits / T) drawn by
    inverse CDF from page_random, the unknown symbol never drawn, summed left to right as the page does."""
    net, rand, out = copy.deepcopy(model).double().eval(), page_random(seed), []
    with torch.no_grad():
        logits, hidden = net(start_ids(vocab, prime)[None])  # (1, P, V)
        for _ in range(length):
            row = logits[0, -1].tolist()
            row[vocab.unk_id] = -math.inf
            top = max(row)
            probs = [0.0 if x == -math.inf else math.exp((x - top) / temperature) for x in row]
            total = 0.0
            for p in probs:
                total += p
            left, pick = next(rand) * total, None
            for i, p in enumerate(probs):
                if p > 0:
                    pick, left = i, left - p
                    if left < 0:
                        break
            out.append(vocab.chars[pick])
            logits, hidden = net(torch.tensor([[pick]]), hidden)  # (1, 1, V)
    return prime + "".join(out)


@needs_chromium
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_greedy_text_equals_chargen_sample(pages, cell):
    """Guards against a wrong gate order, a missing bias, a layer fed the wrong input or an off-by-one
    between the prime and the first draw: 200 greedy characters must equal `chargen sample --temp 0`."""
    model, vocab, page = pages[cell]
    expected = chargen_text(model, vocab, length=200, temperature=0, prime="The ")
    assert len(set(expected[4:])) >= 5  # the model learned something: its text is not one repeated character
    text, attrs = run_page(page, prime="The ", temp=0, length=200, seed=1)
    assert attrs.get("data-done") == "1" and "data-error" not in attrs
    assert float(attrs["data-chars-per-second"]) >= 0
    assert attrs.get("data-kernel") == "wasm-simd"  # the float32 SIMD sums, not the float64 fallback
    assert text == expected


@needs_chromium
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_javascript_fallback_gives_the_same_greedy_text(pages, cell):
    """Guards against a fallback that is never taken or has rotted: in a browser without WebAssembly
    (Chromium with --jitless) the page selects its plain JavaScript kernel and still writes chargen's text."""
    model, vocab, page = pages[cell]
    expected = chargen_text(model, vocab, length=200, temperature=0, prime="The ")
    text, attrs = run_page(page, flags=("--js-flags=--jitless",), prime="The ", temp=0, length=200, seed=1)
    assert attrs.get("data-kernel") == "js" and attrs.get("data-done") == "1" and "data-error" not in attrs
    assert text == expected


@needs_chromium
def test_a_page_of_the_shipped_size_runs_the_simd_kernel_and_writes_chargens_text(tmp_path):
    """Guards against the SIMD kernel being skipped for the shipped model's size (GRU 2x256, E=64: the
    weights far past the kernel's first memory page) or its float32 sums over 256 columns drifting from
    PyTorch's: the page loads with data-kernel="wasm-simd" and 200 greedy characters equal chargen's."""
    vocab = Vocab.from_text(TEXT)
    model = train_tiny("gru", vocab, shape=(2, 64, 256))
    write_page(model, vocab, tmp_path / "big.html", "shipped size", ABOUT)
    expected = chargen_text(model, vocab, length=200, temperature=0, prime="The ")
    assert len(set(expected[4:])) >= 5
    text, attrs = run_page(tmp_path / "big.html", prime="The ", temp=0, length=200)
    assert attrs.get("data-kernel") == "wasm-simd" and attrs.get("data-done") == "1"
    assert text == expected


def test_the_kernel_is_a_checked_in_wasm_module_inside_the_page_with_its_rebuild_documented(pages, tmp_path):
    """Guards against a page shipped without its kernel (a missing or text-mode matvec.wasm, a package
    that leaves it out) and a kernel nobody can rebuild: the bytes are a version-1 WebAssembly module,
    the page holds them as base64, and the text source names the script that compiles it."""
    from importlib import resources

    folder = resources.files("chargen.export")
    wasm = folder.joinpath("matvec.wasm").read_bytes()
    assert wasm[:8] == b"\0asm\x01\0\0\0" and b"matvec" in wasm  # magic, version 1, the exported function
    model, vocab, _ = pages["rnn"]
    write_page(model, vocab, tmp_path / "k.html", "k", {})
    assert f'const KERNEL = "{base64.b64encode(wasm).decode()}";' in (tmp_path / "k.html").read_text(encoding="utf-8")
    root = Path(__file__).parents[2]
    wat = (root / "chargen" / "export" / "matvec.wat").read_text(encoding="utf-8")
    script = root / "scripts" / "build_matvec.js"
    assert "(export \"matvec\")" in wat and "node scripts/build_matvec.js" in wat
    assert "matvec.wat" in script.read_text(encoding="utf-8") and "matvec.wasm" in script.read_text(encoding="utf-8")


@needs_chromium
def test_seeded_sampling_is_the_page_generator_over_softmax(pages):
    """Guards against temperature applied wrongly (T times the logits, or after the softmax), the unknown
    symbol drawn, a seed that is ignored, and an empty prime not read as a newline: same seed, same text,
    equal to the draws written again in Python; another seed, other text."""
    model, vocab, page = pages["lstm"]
    first, attrs = run_page(page, prime="", temp=0.8, length=150, seed=7)
    again, _ = run_page(page, prime="", temp=0.8, length=150, seed=7)
    other, _ = run_page(page, prime="", temp=0.8, length=150, seed=8)
    assert attrs["data-seed"] == "7"
    assert first == again == reference_draws(model, vocab, "", 0.8, 7, 150)
    assert len(first) == 150 and vocab.unk not in first
    assert other != first


@needs_chromium
def test_stop_string_and_unseen_prime_character(pages):
    """Guards against a stop string matched inside the prime or cut in the wrong place, and a prime
    character the model never saw breaking the page: both as chargen does (read as the unknown symbol)."""
    model, vocab, page = pages["gru"]
    prime = "Th\u00e9 \U0001f600cat"  # é and an emoji (two UTF-16 units in JavaScript) are not in the vocabulary
    expected = chargen_text(model, vocab, length=200, temperature=0, prime=prime, stop="he")
    assert expected.endswith("he") and len(expected) < len(prime) + 200  # the stop string does cut this text
    text, attrs = run_page(page, prime=prime, temp=0, length=200, stop="he")
    assert attrs.get("data-done") == "1" and "data-error" not in attrs
    assert text == expected


@needs_chromium
def test_a_vocabulary_without_unknown_symbol_refuses_unseen_characters(pages, tmp_path):
    """Guards against a format-1 model (no unknown symbol) silently reading an unseen character as id
    null: the page refuses the prime with a message naming the character, as the CLI does."""
    model, vocab, _ = pages["rnn"]
    bare = Vocab(tuple(c for c in vocab.chars if c != vocab.unk))
    small = copy.deepcopy(model)
    keep = torch.tensor([i for i, c in enumerate(vocab.chars) if c != vocab.unk])
    with torch.no_grad():
        small.embedding = torch.nn.Embedding.from_pretrained(model.embedding.weight[keep])
        small.head = torch.nn.Linear(model.config.hidden_size, len(bare))
        small.head.weight.copy_(model.head.weight[keep])
        small.head.bias.copy_(model.head.bias[keep])
    small.config = ModelConfig(**{**model.config.to_dict(), "vocab_size": len(bare)})
    write_page(small, bare, tmp_path / "bare.html", "bare", {})
    text, attrs = run_page(tmp_path / "bare.html", prime="Th\u00e9", temp=0, length=20)
    assert "\u00e9" in attrs.get("data-error", "") and "data-done" not in attrs and text == ""


def test_spec_holds_the_weights_exactly_and_the_page_escapes_text(pages, tmp_path):
    """Guards against weights mangled on the way to the page (order, offsets, byte order) and a title,
    fact or vocabulary character ("<") that closes the page's script or title element early."""
    model, vocab, _ = pages["lstm"]
    spec = model_spec(model, vocab)
    blob = np.frombuffer(base64.b64decode(spec["blob"]), dtype="<f4")
    for name, tensor in model.state_dict().items():
        offset, size = spec["tensors"][name]
        assert np.array_equal(blob[offset: offset + size], tensor.numpy().ravel())
    assert blob.size == model.num_parameters()
    assert spec["chars"] == list(vocab.chars) and spec["unk"] == vocab.unk_id
    assert spec["start"] == vocab.chars.index("\n")
    write_page(model, vocab, tmp_path / "p.html", "</title><script>alert(1)</script>", {"a<b": "</dd></dl>"})
    page = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "</dd></dl>" not in page
    assert page.count("</script>") == 2 and page.count("<title>") == 1
    data = re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.DOTALL).group(1)
    assert "<" not in data and json.loads(data) == spec


def test_vocabulary_that_does_not_fit_the_model_is_refused(pages, tmp_path):
    """Guards against a page whose characters are off by one from the model's outputs."""
    model, _, _ = pages["gru"]
    with pytest.raises(ChargenError, match="vocabulary"):
        write_page(model, Vocab.from_text("abc"), tmp_path / "x.html", "x", {})
    assert not (tmp_path / "x.html").exists()


@needs_chromium
def test_a_bytes_model_reads_and_writes_utf8_on_the_page_as_chargen_does(tmp_path):
    """Guards against a page that shows a bytes model's labels (one Latin-1 character per byte) instead
    of the UTF-8 text, or reads the prime as characters: greedy text with accented letters equals chargen's."""
    vocab = Vocab.for_bytes()
    text = TEXT.replace("cat", "chat é").replace("net", "nœud")
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=256, cell="gru", num_layers=1, hidden_size=21, embedding_dim=5,
                                dropout=0.0))
    ids = vocab.encode(text)  # (N,) bytes
    opt = torch.optim.Adam(model.parameters(), lr=0.04)
    for _ in range(80):
        starts = torch.randint(0, len(ids) - 25, (5,)).tolist()
        batch = torch.stack([ids[s: s + 25] for s in starts])  # (B, T+1)
        loss = F.cross_entropy(model(batch[:, :-1])[0].reshape(-1, 256), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    write_page(model, vocab, tmp_path / "bytes.html", "bytes", ABOUT)
    got, attrs = run_page(tmp_path / "bytes.html", prime="The chat", temp=0, length=150)
    expected = "The chat" + "".join(generate(model, vocab, SampleConfig(length=150, temperature=0,
                                                                        prime="The chat"), "cpu"))
    assert attrs.get("data-done") == "1" and "data-error" not in attrs
    assert got == expected and "é" in expected[8:]  # a two-byte character the model drew


@needs_chromium
def test_a_records_model_page_writes_whole_records_as_sample_records_does(tmp_path):
    """Guards against a page that runs a records model as a stream (no end symbol read first, records
    run together): greedy records on the page, one per line, equal chargen's sample_records."""
    from chargen import RECORD_END, sample_records

    names = ["anna", "bob", "carla", "dave", "emma", "frank", "gina", "hal"] * 30
    stream = "".join(RECORD_END + n for n in names) + RECORD_END
    vocab = Vocab.from_text(stream)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="lstm", num_layers=1, hidden_size=18, embedding_dim=6,
                                dropout=0.0))
    ids = vocab.encode(stream)  # (N,)
    opt = torch.optim.Adam(model.parameters(), lr=0.04)
    for _ in range(80):
        starts = torch.randint(0, len(ids) - 25, (6,)).tolist()
        batch = torch.stack([ids[s: s + 25] for s in starts])  # (B, T+1)
        loss = F.cross_entropy(model(batch[:, :-1])[0].reshape(-1, len(vocab)), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    write_page(model, vocab, tmp_path / "records.html", "names", ABOUT, records=True)
    drawn = sample_records(model, vocab, SampleConfig(length=20, temperature=0, prime="e", num_samples=1), "cpu")
    assert drawn.ended == [True]  # the model ends its record: the page then starts the next one
    got, attrs = run_page(tmp_path / "records.html", prime="e", temp=0, length=60)
    assert attrs.get("data-done") == "1" and "data-error" not in attrs
    lines = got.split("\n")
    assert len(lines) >= 3 and RECORD_END not in got
    assert all(line == drawn.records[0] for line in lines[:-1])  # greedy: every record is the same
    assert drawn.records[0].startswith(lines[-1])  # the last one cut at --length
