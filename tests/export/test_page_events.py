"""The exported page as a person uses it: real key presses, typed text and clicks sent through the
DevTools protocol (cdp.py) to headless Chromium, at desktop (1280x800) and phone (390x844) sizes.
test_web.py checks the text the page generates; this file checks the form, the controls and the
layout around it. Each test starts one browser: a few seconds each."""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import pytest
import torch
from cdp import DESKTOP, PHONE, Browser
from test_web import ABOUT, CHROMIUM, TEXT, chargen_text, needs_chromium, page_random, train_tiny

from chargen import CharRNN, ModelConfig, Vocab
from chargen.export.web import write_page
from chargen.sample.sampler import start_ids

pytestmark = needs_chromium
BIG_SEED = 2**53 + 1  # past JavaScript's safe integers: the page must read it exactly


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[CharRNN, Vocab, Path]:
    vocab = Vocab.from_text(TEXT)
    model = train_tiny("gru", vocab)
    path = tmp_path_factory.mktemp("events") / "gru.html"
    write_page(model, vocab, path, "tiny gru", ABOUT)
    return model, vocab, path


def browser(tmp_path: Path, screen: dict = DESKTOP, flags: tuple[str, ...] = ()) -> Browser:
    return Browser(CHROMIUM, tmp_path / "profile", flags, screen)


def output(b: Browser) -> str:
    return b.js("document.getElementById('output').textContent")


def state(b: Browser) -> dict:
    """The status line, each field's message, which fields are marked invalid, and the focused element."""
    return b.js("""(() => ({status: document.getElementById('status').textContent,
        error: document.getElementById('status').classList.contains('error'),
        messages: Object.fromEntries([...document.querySelectorAll('.error-text')].filter(e => e.textContent)
          .map(e => [e.id, e.textContent])),
        invalid: [...document.querySelectorAll('[aria-invalid=true]')].map(e => e.id),
        focus: document.activeElement.id}))()""")


def generate(b: Browser, **fields) -> None:
    """Type each field's value over what it holds, then click Generate and wait for the end."""
    for key, value in fields.items():
        b.type_into(f"#{key}", str(value))
    b.click("#generate")
    b.wait("document.getElementById('output').dataset.done === '1'")


def reference(model: CharRNN, vocab: Vocab, temperature: float, seed: int, length: int, top_k: int = 0,
              top_p: float = 1.0) -> str:
    """The page's draws written again (test_web.reference_draws) with chargen's top-k and top-p filters:
    from an empty prime, over a float64 copy of the model."""
    net, rand, out = copy.deepcopy(model).double().eval(), page_random(seed), []
    with torch.no_grad():
        logits, hidden = net(start_ids(vocab, "")[None])  # (1, P, V)
        for _ in range(length):
            row = logits[0, -1].tolist()
            row[vocab.unk_id] = -math.inf
            probs = [0.0 if x == -math.inf else math.exp((x - max(row)) / temperature) for x in row]
            if top_k:
                kth = sorted(row, reverse=True)[top_k - 1]
                probs = [0.0 if x < kth else p for x, p in zip(row, probs)]
            if top_p < 1:
                total, before = sum(probs), 0.0
                for i in sorted(range(len(probs)), key=lambda i: (-probs[i], i)):
                    p = probs[i] / total
                    probs[i] = 0.0 if before >= top_p else probs[i]
                    before += p
            left, pick = next(rand) * sum(probs), None
            for i, p in enumerate(probs):
                if p > 0:
                    pick, left = i, left - p
                    if left < 0:
                        break
            out.append(vocab.chars[pick])
            logits, hidden = net(torch.tensor([[pick]]), hidden)  # (1, 1, V)
    return "".join(out)


def test_the_form_checks_its_fields_itself_and_names_the_wrong_one(page, tmp_path):
    """Guards against the browser's own checks running first (a temperature off a 0.05 step refused, a
    bubble instead of the page's message), a status line left blaming the temperature when the length is
    wrong, and a seed past 2^53 called "not a whole number": typed values and a pressed Enter or a click."""
    model, vocab, path = page
    with browser(tmp_path) as b:
        b.open(path.as_uri())
        generate(b, temp="0.33", length="40", seed=str(BIG_SEED))
        assert state(b)["error"] is False and b.js("document.getElementById('output').dataset.seed") == str(BIG_SEED)
        assert output(b) == reference(model, vocab, 0.33, BIG_SEED, 40)
        b.type_into("#temp", "101")
        b.key("Enter", 13, "\r")
        assert state(b) == {"status": "Temperature must be a number from 0 to 100.", "error": True,
                            "messages": {"temp-error": "Temperature must be a number from 0 to 100."},
                            "invalid": ["temp"], "focus": "temp"}
        b.type_into("#temp", "0.01")  # typing in the field clears its message and the status line's
        assert state(b)["messages"] == {} and state(b)["error"] is False and state(b)["invalid"] == []
        b.type_into("#length", "2000000")
        b.click("#generate")
        assert state(b) == {"status": "Characters must be a whole number from 0 to 1,000,000.", "error": True,
                            "messages": {"length-error": "Characters must be a whole number from 0 to 1,000,000."},
                            "invalid": ["length"], "focus": "length"}
        b.type_into("#seed", str(2**63))
        b.type_into("#length", "10")
        b.click("#generate")
        assert state(b)["messages"] == {"seed-error": "The seed must be a whole number from 0 to "
                                                      "9,223,372,036,854,775,807, or blank."}


def test_top_k_top_p_and_an_escaped_stop_string_work_as_in_the_cli(page, tmp_path):
    """Guards against top-k and top-p missing or applied in another order than chargen's filter_logits,
    and "stop after" taking \\n as two characters: top-k 1 is greedy at any temperature, a seeded draw
    with both filters equals the draws written again, and a typed \\n stops at the first new line."""
    model, vocab, path = page
    greedy = chargen_text(model, vocab, length=120, temperature=0, prime="")
    with browser(tmp_path) as b:
        b.open(path.as_uri())
        generate(b, temp="1.5", length="120", top_k="1", seed="3")
        assert output(b) == greedy
        generate(b, temp="0.9", length="150", top_k="4", top_p="0.8", seed="11")
        assert output(b) == reference(model, vocab, 0.9, 11, 150, top_k=4, top_p=0.8)
        assert output(b) != reference(model, vocab, 0.9, 11, 150)  # the filters changed this draw
        generate(b, prime="the net.", temp="0", length="200", top_k="0", top_p="1", stop="\\n")
        expected = chargen_text(model, vocab, length=200, temperature=0, prime="the net.", stop="\n")
        assert output(b) == expected and expected.endswith("\n") and expected.count("\n") == 1


def test_on_a_phone_the_output_is_in_view_after_generate(page, tmp_path):
    """Guards against a phone layout where the text appears below "About this model", out of sight, so
    that after a tap on Generate nothing visible changes: at 390x844 the output is on screen after it."""
    _, _, path = page
    with browser(tmp_path, PHONE) as b:
        b.open(path.as_uri())
        order = b.js("[...document.querySelectorAll('#settings, #output, .about')].map(e => e.id || e.className)")
        assert order == ["settings", "output", "about"]
        b.click("#generate")
        b.wait("document.getElementById('output').dataset.done === '1'")
        box = b.js("(() => { const r = document.getElementById('output').getBoundingClientRect(); "
                   "return [r.top, r.bottom, innerHeight, innerWidth, document.documentElement.scrollWidth]; })()")
        top, bottom, height, width, scroll_width = box
        assert 0 <= top < height / 2 and bottom > top + 100  # its top half of the screen, text showing
        assert width == 390 and scroll_width == 390  # nothing wider than the phone


def test_without_webassembly_the_page_says_it_runs_in_a_slow_mode(page, tmp_path):
    """Guards against a page that silently writes a hundred times slower: with WebAssembly off
    (--jitless) a notice says so; with it on, there is none."""
    _, _, path = page
    notice = "document.getElementById('mode')"
    with browser(tmp_path) as b:
        b.open(path.as_uri())
        assert b.js(f"{notice}.hidden") is True
    with browser(tmp_path, flags=("--js-flags=--jitless",)) as b:
        b.open(path.as_uri())
        assert b.js(f"{notice}.hidden") is False and b.js(f"{notice}.getBoundingClientRect().height") > 0
        assert b.js(f"{notice}.textContent").startswith("Slow mode: this browser runs the page without WebAssembly")


def test_a_long_prime_is_read_without_freezing_the_page(tmp_path):
    """Guards against a 30,000-character prime read in one go, which held the page still for seconds:
    while it is read the page answers within a slice and says how far it is, and the text after it is
    chargen's."""
    vocab = Vocab.from_text(TEXT)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=len(vocab), cell="gru", num_layers=2, hidden_size=256, embedding_dim=64,
                                dropout=0.0)).eval()  # the shipped model's shape: about 7,000 steps/s
    write_page(model, vocab, tmp_path / "big.html", "big", ABOUT)
    prime = (TEXT * 30)[:30000]
    with browser(tmp_path) as b:
        b.open((tmp_path / "big.html").as_uri())
        b.js(f"document.getElementById('prime').value = {prime!r}")  # 30,000 key events would take minutes
        b.type_into("#temp", "0")
        b.type_into("#length", "20")
        b.click("#generate")
        b.wait("document.getElementById('status').textContent.startsWith('Reading the prime')", timeout=10)
        slowest = 0.0
        while b.js("document.getElementById('status').textContent.startsWith('Reading the prime')"):
            t0 = time.monotonic()
            b.js("1")
            slowest = max(slowest, time.monotonic() - t0)
        b.wait("document.getElementById('output').dataset.done === '1'", timeout=60)
        assert slowest < 0.5  # the old page read the whole prime in one task
        assert output(b) == chargen_text(model, vocab, length=20, temperature=0, prime=prime)


def test_copy_and_download_give_the_text_as_shown(page, tmp_path):
    """Guards against a page whose text can only be selected by hand: Copy puts the output on the
    clipboard and Download saves it as a UTF-8 file, both exactly the text shown."""
    _, _, path = page
    with browser(tmp_path) as b:
        b.open(path.as_uri())
        assert b.js("document.getElementById('copy').disabled") is True  # nothing to copy yet
        generate(b, prime="The \u00e9", temp="0.7", length="80", seed="2")
        shown = output(b)
        b.call("Browser.grantPermissions", permissions=["clipboardReadWrite", "clipboardSanitizedWrite"])
        b.click("#copy")
        b.wait("document.getElementById('status').textContent.startsWith('Copied')")
        assert b.js("navigator.clipboard.readText()") == shown
        (tmp_path / "downloads").mkdir()
        b.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(tmp_path / "downloads"))
        b.click("#download")
        saved = tmp_path / "downloads" / "chargen-sample.txt"
        for _ in range(100):
            if saved.exists():
                break
            time.sleep(0.05)
        assert saved.read_text(encoding="utf-8") == shown and shown.startswith("The \u00e9")
