"""A small Chrome DevTools Protocol client for driving the exported page with real input events:
headless Chromium started with --remote-debugging-pipe (JSON messages ending in a NUL byte, on the
child's file descriptors 3 and 4), so nothing beyond the standard library is needed. Test helper only."""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}
DESKTOP = {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}


def _high(fd: int) -> int:
    """`fd` moved to a number of 100 or more (the old one closed)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 100)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium with one page (a tab) attached; use as a context manager."""

    def __init__(self, chromium: str, profile: Path, flags: tuple[str, ...] = (), screen: dict = DESKTOP) -> None:
        to_child, self._write = os.pipe()  # the child reads commands on its fd 3
        self._read, from_child = os.pipe()  # and writes replies on its fd 4
        to_child, from_child = (_high(fd) for fd in (to_child, from_child))  # never 3 or 4 themselves
        # Bash (dash takes no fd past 9) puts the two pipe ends on fds 3 and 4, where Chromium looks for
        # them, then becomes Chromium.
        wire = f'exec "$0" "$@" 3<&{to_child} 4>&{from_child} {to_child}<&- {from_child}>&-'
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", wire, chromium, "--headless", "--disable-gpu", "--no-sandbox",
             "--no-first-run", "--disable-extensions",
             "--disable-dev-shm-usage", "--mute-audio", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             *flags, "about:blank"],
            pass_fds=(to_child, from_child), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(from_child)
        self._buffer, self._next_id, self.session = b"", 0, None
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", **screen)
        if screen["mobile"]:
            self.call("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=1)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self._write)
        os.close(self._read)

    def call(self, method: str, timeout: float = 60, **params):
        """Send one command (to the page's session once attached) and return its result."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("no reply from Chromium")
            block = os.read(self._read, 1 << 20)
            if not block:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += block
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def js(self, expression: str, timeout: float = 60):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """Go to `url` and wait until the page says it is ready (or could not load)."""
        self.call("Page.navigate", url=url)
        self.wait("document.readyState === 'complete' && /Ready|Could not|Generating|characters in/"
                  ".test(document.getElementById('status').textContent)")

    def wait(self, condition: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {condition}")
            time.sleep(0.05)

    def box(self, selector: str) -> dict:
        """The element's rectangle in the viewport, after scrolling it into view as a reader would."""
        return self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                       "e.scrollIntoView({block: 'nearest'}); const r = e.getBoundingClientRect(); "
                       "return {x: r.x, y: r.y, width: r.width, height: r.height}; })()")

    def click(self, selector: str) -> None:
        """A real mouse press and release at the middle of the element."""
        b = self.box(selector)
        x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector: str, text: str) -> None:
        """Click the field, select what it holds, and type `text` over it (as insertText: an IME's commit)."""
        self.click(selector)
        self.call("Input.dispatchKeyEvent", type="rawKeyDown", key="a", code="KeyA", windowsVirtualKeyCode=65,
                  modifiers=2, commands=["selectAll"])
        self.call("Input.dispatchKeyEvent", type="keyUp", key="a", code="KeyA", windowsVirtualKeyCode=65, modifiers=2)
        if text:
            self.call("Input.insertText", text=text)
        else:
            self.key("Backspace", 8)

    def key(self, key: str, code: int, text: str | None = None) -> None:
        """Press and release one key (Enter: 13, "\\r"; Backspace: 8)."""
        down = {"type": "keyDown", "key": key, "code": key, "windowsVirtualKeyCode": code}
        self.call("Input.dispatchKeyEvent", **down, **({"text": text} if text else {}))
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=key, windowsVirtualKeyCode=code)

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params = {"format": "png", "captureBeyondViewport": full_page}
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", **params)["data"]))
