// Generates characters one onnxruntime-web session.run at a time and reports chars/s.
// Query: threads=1|2|default, length=N, temp=T, seed=S, post=URL (also POST the result there).
// The result is JSON in <pre id="result"> (for --dump-dom) and, with post=URL, in the POST body.
"use strict";

const params = new URLSearchParams(location.search);

function mulberry32(seed) {
  // A small seeded generator so two runs with one seed draw the same text.
  return function () {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sample(logits, temp, rand) {
  // softmax(logits / temp), then one draw by inverse CDF; subtracting the max keeps exp finite.
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += (p[i] = Math.exp((logits[i] - max) / temp));
  let u = rand() * sum;
  for (let i = 0; i < p.length; i++) if ((u -= p[i]) <= 0) return i;
  return p.length - 1;
}

function base64Bytes(b64) {
  const raw = atob(b64);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

async function report(result) {
  document.getElementById("result").textContent = JSON.stringify(result);
  document.getElementById("status").textContent = result.error ? "error" : "done";
  if (params.get("post")) {
    // A text/plain POST needs no CORS preflight, so a file:// page can report to the local server too.
    await fetch(params.get("post"), { method: "POST", body: JSON.stringify(result) });
  }
}

async function loadInlined() {
  // The single-file variant (inline.html): no fetch and no import of a file, so it can open from file://.
  // ort_inline.js holds the ES-module bundle as text and the .wasm as base64; the bundle is imported
  // from a blob: URL and handed the wasm bytes, so it never asks for its own files.
  const lib = await import(URL.createObjectURL(new Blob([ORT_BUNDLE], { type: "text/javascript" })));
  lib.env.wasm.wasmBinary = base64Bytes(ORT_WASM_B64);
  return lib;
}

async function main() {
  if (typeof ort === "undefined") window.ort = await loadInlined();
  const threads = params.get("threads") || "default";
  const length = parseInt(params.get("length") || "3000", 10);
  const temp = parseFloat(params.get("temp") || "0.8");
  const rand = mulberry32(parseInt(params.get("seed") || "1", 10));
  if (threads !== "default") ort.env.wasm.numThreads = parseInt(threads, 10);
  const { vocab, layers, hidden } = STEP_MODEL;

  const modelBytes = base64Bytes(STEP_MODEL.onnx_b64);
  // session_ms: loading and compiling the wasm (fetched over http, or already in memory when inlined) and the model.
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(modelBytes, { executionProviders: ["wasm"] });
  const t1 = performance.now();
  let h = new ort.Tensor("float32", new Float32Array(layers * hidden), [layers, 1, hidden]);
  let id = vocab.indexOf("\n");
  // The first run is timed apart: it pays one-off allocations the steady state does not.
  let out = await session.run({ ids: new ort.Tensor("int64", BigInt64Array.of(BigInt(id)), [1]), h });
  const t2 = performance.now();
  const chars = [];
  let tHalf = t2;
  for (let i = 0; i < length; i++) {
    if (i === length >> 1) tHalf = performance.now();
    id = sample(out.logits.data, temp, rand);
    chars.push(vocab[id]);
    h = out.h_out;
    out = await session.run({ ids: new ort.Tensor("int64", BigInt64Array.of(BigInt(id)), [1]), h });
  }
  const t3 = performance.now();
  await report({
    ort_version: ort.env.versions ? ort.env.versions.web : null,
    threads_asked: threads, threads_used: ort.env.wasm.numThreads,
    cross_origin_isolated: self.crossOriginIsolated === true,
    hardware_concurrency: navigator.hardwareConcurrency,
    session_ms: t1 - t0, first_run_ms: t2 - t1, gen_ms: t3 - t2, length,
    chars_per_s: length / ((t3 - t2) / 1000),
    // The second half alone: V8 runs wasm in its baseline tier until the optimised code is ready.
    tail_chars_per_s: (length - (length >> 1)) / ((t3 - tHalf) / 1000), text_head: chars.slice(0, 300).join(""),
    protocol: location.protocol,
  });
}

main().catch((e) => report({ error: String(e && e.stack || e), protocol: location.protocol }));
