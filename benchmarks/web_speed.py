"""How fast the exported web page generates in headless Chromium: the shipped GRU 2x256 as a page in a
temporary folder, one stream of --length characters at --temp, read from the page's own measurement
(characters drawn / seconds from Generate to done, the weights' decoding at load not included).

Chromium is driven over the DevTools protocol on a pipe, in real time: the --virtual-time-budget
that the tests use makes performance.now() run on a virtual clock, which would make the figure
meaningless. Prints one JSON line.

    .venv/bin/python benchmarks/web_speed.py [--length 20000] [--temp 0.8] [--runs 3] [--no-wasm]

--no-wasm adds one line at the top of the page's <head> that sets WebAssembly to undefined before the page's
own script runs, so the page takes the plain JavaScript products it falls back to in a browser without
WebAssembly; the JSON says which path ran.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine

from chargen.export.card import describe
from chargen.export.web import write_page
from chargen.modelfile import load_model

SHIPPED = ROOT / "checkpoints" / "shakespeare-gru" / "best.pt"


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no chromium binary on the PATH (Debian: apt-get install -y chromium)")


class DevTools:
    """A headless Chromium with --remote-debugging-pipe: commands go to its fd 3, replies come from its fd 4,
    each a JSON message ended by a NUL byte."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def wire() -> None:  # in the child: its fd 3 reads our commands, its fd 4 writes its replies
            high = fcntl.fcntl(to_chrome, fcntl.F_DUPFD, 10), fcntl.fcntl(from_chrome, fcntl.F_DUPFD, 10)
            os.dup2(high[0], 3)  # dup2 to another number makes an inheritable copy, whatever the pipes' numbers
            os.dup2(high[1], 4)

        self.proc = subprocess.Popen(
            [binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-pipe",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
            preexec_fn=wire)  # noqa: PLW1509 - this script starts no threads
        os.close(to_chrome)
        os.close(from_chrome)
        self._next, self._buffer, self.session = 0, b"", None

    def call(self, method: str, **params):
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_page(chrome: DevTools, page: Path, length: int, temp: float, seed: int, timeout: float) -> dict:
    chrome.open(f"{page.as_uri()}#prime=ROMEO%3A&temp={temp}&length={length}&seed={seed}&autorun=1")
    deadline = time.monotonic() + timeout
    read = "JSON.stringify(Object.assign({}, (document.getElementById('output') || {dataset: {}}).dataset))"
    while time.monotonic() < deadline:
        data = json.loads(chrome.evaluate(read) or "{}")
        if data.get("done") or data.get("error"):
            text = chrome.evaluate("document.getElementById('output').textContent")
            wasm = chrome.evaluate("typeof WebAssembly === 'object'")
            return {"chars_per_second": float(data.get("charsPerSecond", 0)), "load_ms": float(data.get("loadMs", 0)),
                    "chars": len(text), "webassembly": bool(wasm), "error": data.get("error")}
        time.sleep(0.25)
    raise SystemExit(f"the page did not finish within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=20000)
    parser.add_argument("--temp", type=float, default=0.8)
    parser.add_argument("--runs", type=int, default=3, help="page loads; the best and every figure are reported")
    parser.add_argument("--no-wasm", action="store_true", help="hide WebAssembly: time the page's JavaScript path")
    args = parser.parse_args()
    binary = find_chromium()
    model, vocab, ckpt = load_model(SHIPPED)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "shakespeare-gru.html"
        write_page(model, vocab, page, "chargen GRU on Shakespeare", describe(ckpt, model))
        if args.no_wasm:
            html = page.read_text(encoding="utf-8")
            page.write_text(html.replace("<head>", "<head>\n<script>globalThis.WebAssembly = undefined;</script>", 1),
                            encoding="utf-8")
        chrome = DevTools(binary, Path(tmp) / "profile")
        try:
            runs = [run_page(chrome, page, args.length, args.temp, seed, timeout=600)
                    for seed in range(1, args.runs + 1)]
        finally:
            chrome.close()
        size = page.stat().st_size
    version = subprocess.run([binary, "--version"], check=False, capture_output=True, text=True).stdout.strip()
    print(json.dumps({"benchmark": "web_speed", "model": "shakespeare-gru 2x256", "length": args.length,
                      "temperature": args.temp, "webassembly": all(r["webassembly"] for r in runs),
                      "chars_per_second": max(r["chars_per_second"] for r in runs),
                      "runs": runs, "page_bytes": size, "browser": version, "machine": machine()}))


if __name__ == "__main__":
    main()
