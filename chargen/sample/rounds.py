"""The draw-and-feed rounds, written once: K rounds of "draw the next id of every stream from
the top layer's state, feed it back" as one program (`Rounds`), and the three ways to run
it, chosen when the program is built: eagerly, replayed as a CUDA graph, or compiled.

An eager loop on a GPU spends its time launching kernels, a dozen or more per character,
each costing more to launch than to run; a CUDA graph launches a chunk's kernels at once.
On a CPU the program runs eagerly, or as torch.compile compiles it (`compile=True`: its
generated C++ loops remove most of the per-op cost, after seconds of compiling).

A draw is one product and one argmax: the temperature is folded into the output weights
and the output bias, and the Gumbel noise is added to the bias (argmax(logits / T + g) is
an exact draw from softmax(logits / T)). Top-k and top-p add their filtering ops. The
noise comes from the sampler's GumbelNoise in the order the rounds use it, so every way
of running gives the same text from the same seed wherever the logits agree (compiled
code rounds differently in the last bit, so where two characters nearly tie it may not).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor

from ..errors import ChargenError
from .step import Cells, FastStep, tf32

Filter = Callable[[Tensor], Tensor]  # logits (N, V) -> temperature-scaled, filtered logits (N, V)


class Rounds:
    """K rounds for N streams, every tensor a buffer made once: the state (a Cells), the per-round
    addends (K, N, V) and the ids drawn (K, N). Calling it runs the K rounds in place."""

    def __init__(self, step: FastStep, n: int, k: int, head_w: Tensor, bias: Tensor, filter_fn: Filter | None) -> None:
        """`head_w` (H, V) holds 1/T when no filter is on; each round's addend is then bias/T plus
        noise, and with a filter the noise alone, added to filter_fn(logits)."""
        self.cells, self.head_w, self.bias, self.filter_fn = Cells(step, n), head_w, bias, filter_fn
        v = bias.numel()
        self.addend = bias.new_empty(k, n, v).copy_(bias)  # (K, N, V)
        self.ids = torch.zeros(k, n, dtype=torch.long, device=bias.device)  # (K, N)
        self.scores = bias.new_empty(n, v)  # (N, V)
        self.by_round = list(zip(self.ids, self.addend))  # views made once: (N,) ids, (N, V) addend

    def __call__(self) -> None:
        top, scores, w = self.cells.top, self.scores, self.head_w
        for ids, addend in self.by_round:
            if self.filter_fn is None:
                torch.addmm(addend, top, w, out=scores)  # (N, V): logits / T + noise
            else:
                torch.add(self.filter_fn(torch.addmm(self.bias, top, w)), addend, out=scores)
            torch.argmax(scores, dim=1, out=ids)  # (N,)
            self.cells.advance(ids)


def chunk_size(device: torch.device, streams: int, vocab_size: int) -> int:
    """Characters per chunk: 64 on a GPU, 32 on a CPU, fewer when a chunk's noise (K, N, V)
    would pass 16 MB."""
    most = 64 if device.type == "cuda" else 32
    return max(1, min(most, (1 << 22) // (streams * vocab_size)))


class Chunk:
    """K rounds for N streams over static buffers, run one way chosen at construction:
    "eager", "graph" (CUDA: captured at the first run, replayed after) or "compiled".

    `run(state, noise)` copies `state` in, fills the noise for K rounds, runs the program and
    returns the K x N ids on the CPU and the new state, which lives in this object's buffers
    until the next run.
    """

    def __init__(self, step: FastStep, state, k: int, temperature: float, unk_id: int | None,
                 filter_fn: Filter | None = None, mode: str = "eager") -> None:
        """`filter_fn` maps logits (N, V) to temperature-scaled, top-k/top-p filtered ones; None
        when no filter is on, so that 1/T can fold into the weights."""
        if mode not in ("eager", "graph", "compiled"):
            raise ValueError(f"unknown mode {mode!r}")
        if mode == "graph" and not step.cuda:
            raise ValueError("a CUDA graph needs a model on CUDA")
        self.step, self.k, self.temperature, self.mode = step, k, temperature, mode
        filter_fn = filter_fn if temperature > 0 else None  # greedy ignores the filters
        head_w, bias = step.head_w_t, step.head_b.clone()  # (H, V), (V,)
        if unk_id is not None:  # the unknown symbol is never drawn
            bias[unk_id] = -math.inf
        if temperature > 0 and filter_fn is None:  # fold 1/T into the product and its addend
            t = max(temperature, 1e-30)  # as in filter_logits: a smaller T overflows float32 (and is greedy anyway)
            head_w, bias = head_w / t, bias / t
        self.bias, self.filtered = bias, filter_fn is not None
        self.rounds = Rounds(step, FastStep.top(state).size(0), k, head_w, bias, filter_fn)
        self.program = _compile(self.rounds) if mode == "compiled" else self.rounds
        self.graph: torch.cuda.CUDAGraph | None = None

    def _call(self) -> None:
        with tf32(self.step.cuda):
            self.program()

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: library handles and workspaces exist before capture
            self._call()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._call()

    @torch.inference_mode()
    def run(self, state, noise) -> tuple[Tensor, object]:
        r = self.rounds
        r.cells.load(state)
        if self.temperature > 0:
            gumbel = noise.take(self.k)  # (K, N, V)
            if self.filtered:
                r.addend.copy_(gumbel)
            else:
                torch.add(gumbel, self.bias, out=r.addend)
        if self.mode == "graph":
            if self.graph is None:
                self._capture()
                r.cells.load(state)  # the warm-up and the capture ran the rounds: start again
            cast(torch.cuda.CUDAGraph, self.graph).replay()  # captured just above if it was not
        else:
            self._call()
        return r.ids.to("cpu", copy=True), r.cells.state()  # a copy: the next run overwrites the ids


def _compile(rounds: Rounds) -> Callable[[], None]:
    """The rounds as torch.compile compiles them (at the first call), with Inductor's C++ wrapper
    so that a chunk runs without the Python interpreter. A failure to compile is a ChargenError:
    the user asked for compilation and can drop --compile."""
    compiled = torch.compile(rounds.__call__, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})

    def run() -> None:
        try:
            compiled()
        except Exception as e:  # noqa: BLE001 - torch.compile's failures have no common type
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ChargenError(f"torch.compile could not compile the sampling loop ({type(e).__name__}: {first})",
                               "it needs a C++ compiler (gcc or clang) on the PATH; or sample without --compile") from e
    return run
