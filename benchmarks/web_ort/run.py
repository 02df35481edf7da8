#!/usr/bin/env python3
"""onnxruntime-web in headless Chromium: characters/s when a page runs one GRU step per session.run.

    npm install --prefix /tmp/ortweb onnxruntime-web
    python benchmarks/web_ort/run.py --ortweb /tmp/ortweb [--length 3000] [--repeat 3] [--configs ...]

Issue 19's measurement for "onnxruntime-web or a hand-written JavaScript step" on the export page.
The checkpoint (default: the shipped GRU 2x256) is exported here as one self-contained step model
(step_model.py); the page (harness.html + harness.js) creates a wasm InferenceSession and generates
--length characters, sampling at temperature 0.8 in JavaScript and feeding the state back.
chars/s excludes session creation and the first run (both reported apart); tail_chars_per_s is the
second half of the characters alone (steady state, after V8 has tiered the wasm up).

Configs (each run is a fresh headless Chromium, configs alternate within a repeat):
  http-1            harness.html over http, ort.env.wasm.numThreads = 1
  http-default      the same, numThreads left to onnxruntime-web (1 unless the page is cross-origin isolated)
  coi-default       served with COOP/COEP headers (crossOriginIsolated: threads possible), default threads
  coi-2             the same with numThreads = 2
  file-inline-1     inline.html opened from file://: runtime bundle and wasm inlined as text/base64

Timing needs real time: under --virtual-time-budget, performance.now() stands still while the page
only awaits (the script checks and prints this), so the page POSTs its result to a local
http.server (stdlib, 127.0.0.1, ephemeral port) and Chromium is stopped once it arrives.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import http.server
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # chargen from this checkout
sys.path.insert(0, str(HERE))
from step_model import export_step  # noqa: E402 - found through the path set just above

# What a page needs for the wasm CPU backend: the loader, the Emscripten glue it imports, the binary.
RUNTIME = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
BUNDLE = "ort.wasm.bundle.min.mjs"  # loader and glue in one ES module: the inlined page's runtime
CONFIGS = {  # name: (page, threads, cross-origin isolated, file://)
    "http-1": ("harness.html", "1", False, False),
    "http-default": ("harness.html", "default", False, False),
    "coi-default": ("harness.html", "default", True, False),
    "coi-2": ("harness.html", "2", True, False),
    "file-inline-1": ("inline.html", "1", False, True),
}


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the page's folder, records every GET path, and takes the page's result at POST /result."""

    def __init__(self, *args, results: queue.Queue, isolate: bool, gets: list, **kwargs) -> None:
        self.results, self.isolate, self.gets = results, isolate, gets
        super().__init__(*args, **kwargs)

    def end_headers(self) -> None:
        if self.isolate:  # both headers make the page crossOriginIsolated: SharedArrayBuffer, so wasm threads
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def do_GET(self) -> None:
        self.gets.append(self.path.split("?")[0])
        super().do_GET()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.results.put(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def serve(folder: Path, isolate: bool, results: queue.Queue) -> tuple[http.server.ThreadingHTTPServer, list]:
    gets: list[str] = []
    handler = partial(Handler, directory=str(folder), results=results, isolate=isolate, gets=gets)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, gets


def build_site(dist: Path, checkpoint: Path, site: Path) -> dict:
    """Export the model and fill `site` with the pages, model.js, the runtime files and ort_inline.js."""
    site.mkdir(parents=True, exist_ok=True)
    info = export_step(checkpoint, site / "step.onnx")
    model = {"vocab": info.pop("vocab"), "layers": info["layers"], "hidden": info["hidden"],
             "onnx_b64": base64.b64encode((site / "step.onnx").read_bytes()).decode()}
    (site / "model.js").write_text(f"var STEP_MODEL = {json.dumps(model)};\n")
    for name in ("harness.html", "harness.js", "inline.html"):
        shutil.copy(HERE / name, site / name)
    for name in RUNTIME:
        shutil.copy(dist / name, site / name)
    wasm_b64 = base64.b64encode((dist / RUNTIME[2]).read_bytes()).decode()
    (site / "ort_inline.js").write_text(f"var ORT_BUNDLE = {json.dumps((dist / BUNDLE).read_text())};\n"
                                        f'var ORT_WASM_B64 = "{wasm_b64}";\n')
    return info


def sizes(dist: Path, site: Path) -> list[dict]:
    """Bytes, raw and gzip -9 (what a server sending Content-Encoding: gzip would move), of each shipped file."""
    files = [dist / n for n in RUNTIME] + [dist / BUNDLE, site / "ort_inline.js", site / "step.onnx", site / "model.js"]
    return [{"file": f.name, "bytes": f.stat().st_size, "gzip_bytes": len(gzip.compress(f.read_bytes(), 9))}
            for f in files]


def chromium_cmd(chromium: str, profile: Path, *extra: str) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", *extra]


def dump_dom(chromium: str, profile: Path, url: str, budget_ms: int) -> dict:
    """The page's result JSON as --dump-dom sees it after a virtual time budget (or the status text)."""
    out = subprocess.run(chromium_cmd(chromium, profile, f"--virtual-time-budget={budget_ms}", "--dump-dom", url),
                         check=False, capture_output=True, text=True, timeout=budget_ms / 1000 + 120).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', out, re.DOTALL)
    text = (found.group(1) if found else "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return json.loads(text) if text else {"error": "no result in the DOM (still loading when dumped)"}


def run_page(chromium: str, profile: Path, url: str, results: queue.Queue, timeout: float) -> dict:
    """Open `url` in a headless Chromium of our own and wait for the page's POST; then stop that browser."""
    proc = subprocess.Popen(chromium_cmd(chromium, profile, url), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.perf_counter()
    try:
        result = results.get(timeout=timeout)
    except queue.Empty:
        result = {"error": f"no result within {timeout} s"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the group this Popen created: the browser and its children
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    return result


def native_rate(site: Path, length: int) -> float:
    """Characters/s of the same step model and loop in Python onnxruntime, one thread: this machine's yardstick."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(site / "step.onnx"), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    h, ids = np.zeros((2, 1, 256), np.float32), np.zeros(1, np.int64)
    logits, h = session.run(None, {"ids": ids, "h": h})
    t0 = time.perf_counter()
    for _ in range(length):
        p = np.exp((logits[0] - logits[0].max()) / 0.8)
        ids[0] = rng.choice(p.size, p=p / p.sum())
        logits, h = session.run(None, {"ids": ids, "h": h})
    return length / (time.perf_counter() - t0)


def summary(name: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"config": name, "runs": 0, "error": runs[0]["error"][:200]}
    row = {"config": name, "runs": len(ok), "threads_used": ok[0]["threads_used"],
           "isolated": ok[0]["cross_origin_isolated"]}
    for key, digits in (("chars_per_s", 0), ("tail_chars_per_s", 0), ("session_ms", 1), ("first_run_ms", 2)):
        vals = sorted(r[key] for r in ok)
        row[key] = f"{vals[0]:,.{digits}f} / {statistics.median(vals):,.{digits}f} / {vals[-1]:,.{digits}f}"
    return row


def table(rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ortweb", type=Path, required=True, help="npm prefix holding node_modules/onnxruntime-web")
    ap.add_argument("--checkpoint", type=Path, default=HERE.parent.parent / "checkpoints/shakespeare-gru/best.pt")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--length", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma list of: {', '.join(CONFIGS)}")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one page")
    ap.add_argument("--keep", type=Path, help="build the site here and keep it (default: a temporary folder)")
    args = ap.parse_args()
    dist = args.ortweb / "node_modules/onnxruntime-web/dist"
    version = json.loads((dist.parent / "package.json").read_text())["version"]
    work = Path(tempfile.mkdtemp(prefix="ortweb-"))
    site = args.keep or work / "site"
    info = build_site(dist, args.checkpoint, site)
    chromium_version = subprocess.run([args.chromium, "--version"], check=True, capture_output=True,
                                      text=True).stdout.strip()
    print(f"onnxruntime-web {version}; {chromium_version}; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"step model: {json.dumps(info)}\n")
    table(sizes(dist, site))

    results: queue.Queue = queue.Queue()
    plain, plain_gets = serve(site, False, results)
    isolated, _ = serve(site, True, results)
    base = {False: f"http://127.0.0.1:{plain.server_port}", True: f"http://127.0.0.1:{isolated.server_port}"}
    post = f"{base[False]}/result"
    query = f"length={args.length}&temp=0.8&seed=1"

    frozen = dump_dom(args.chromium, work / "dump", f"{base[False]}/harness.html?threads=1&{query}", 60000)
    print(f"\n--dump-dom --virtual-time-budget=60000 over http: gen_ms={frozen.get('gen_ms')} "
          f"session_ms={frozen.get('session_ms')} (performance.now under virtual time), "
          f"error={frozen.get('error')}; files the page fetched: {sorted(set(plain_gets))}")
    plain_file = dump_dom(args.chromium, work / "file", f"file://{site}/harness.html?threads=1&length=20", 30000)
    print(f"harness.html from file://: {plain_file.get('error', 'works')}\n")

    names = [n for n in args.configs.split(",") if n]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    native: list[float] = []
    for rep in range(args.repeat):
        native.append(native_rate(site, args.length))
        print(json.dumps({"config": "native onnxruntime", "repeat": rep, "chars_per_s": native[-1]}))
        for name in names:
            page, threads, isolate, from_file = CONFIGS[name]
            origin = f"file://{site}" if from_file else base[isolate]
            url = f"{origin}/{page}?threads={threads}&{query}&post={post}"
            result = run_page(args.chromium, work / f"profile-{name}-{rep}", url, results, args.timeout)
            runs[name].append(result)
            print(json.dumps({"config": name, "repeat": rep, **{k: v for k, v in result.items() if k != "text_head"}}))
    plain.shutdown()
    isolated.shutdown()
    native.sort()
    print(f"\nnative onnxruntime (Python, 1 thread, same model and loop), chars/s min / median / max: "
          f"{native[0]:,.0f} / {statistics.median(native):,.0f} / {native[-1]:,.0f}")
    print(f"chars/s, tail_chars_per_s, session_ms, first_run_ms as min / median / max of {args.repeat} runs, "
          f"{args.length} characters:\n")
    table([summary(n, runs[n]) for n in names])
    sample_text = next((r["text_head"] for n in names for r in runs[n] if "text_head" in r), "")
    print(f"\nfirst characters of a run: {sample_text[:200]!r}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
