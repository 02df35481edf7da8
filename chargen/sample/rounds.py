"""The draw-and-feed rounds, written once: K rounds of "draw the next id of every stream from
the top layer's state, feed it back" as one program (`rounds`), and the three ways to run
it, chosen when the program is built: eagerly, replayed as a CUDA graph, or compiled.

An eager loop on a GPU spends its time launching kernels, a dozen or more per character,
each costing more to launch than to run; a CUDA graph launches a chunk's kernels at once.
On a CPU the program runs eagerly, or as torch.compile compiles it (`compile=True`: its
generated C++ loops remove most of the per-op cost, after 5-30 s of compiling).

A draw is one product and one argmax: the temperature is folded into the output weights
and the output bias, and the Gumbel noise is added to the bias (argmax(logits / T + g) is
an exact draw from softmax(logits / T)). Top-k and top-p add their filtering ops. The
noise comes from the sampler's GumbelNoise in the order the rounds use it, so every way
of running gives the same text from the same seed wherever the logits agree (compiled
code rounds differently in the last bit, so where two characters nearly tie it may not).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import torch
from torch import Tensor

from ..errors import ChargenError
from .step import FastStep, run_layers, tf32

Filter = Callable[[Tensor], Tensor]  # logits (N, V) -> temperature-scaled, filtered logits (N, V)


def rounds(cell: str, table: Tensor, w_in: list[Tensor], b_in: list[Tensor], w_hh: Tensor, b_hh: Tensor,
           filter_fn: Filter | None, head_w: Tensor, bias: Tensor, addend: Tensor,
           hs: Tensor, cs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """addend.size(0) rounds for N streams from the state hs (L, N, H) and cs: the ids drawn
    (K, N) and the new hs, cs. `head_w` (H, V) holds 1/T when no filter is on; `addend`
    (K, N, V) is each round's bias plus noise, or the noise alone when `filter_fn` is set."""
    ids = []
    for i in range(addend.size(0)):
        if filter_fn is None:
            scores = torch.addmm(addend[i], hs[-1], head_w)  # (N, V): logits / T + noise
        else:
            scores = filter_fn(torch.addmm(bias, hs[-1], head_w)) + addend[i]  # (N, V)
        nxt = torch.argmax(scores, dim=-1)  # (N,)
        ids.append(nxt)
        hs, cs = run_layers(cell, table.index_select(0, nxt), w_in, b_in, w_hh, b_hh, hs, cs)
    return torch.stack(ids), hs, cs  # (K, N)


@functools.cache
def compiled_rounds() -> Callable:
    """`rounds` as torch.compile compiles it (lazily, at the first call per shape), with
    Inductor's C++ wrapper so that a chunk runs without the Python interpreter."""
    return torch.compile(rounds, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})


def chunk_size(device: torch.device, streams: int, vocab_size: int) -> int:
    """Characters per chunk: 64 on a GPU, 32 on a CPU, fewer when the noise block (K, N, V)
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
        self.filter_fn = filter_fn if temperature > 0 else None  # greedy ignores the filters
        head_w_t, head_b = step.head_w_t, step.head_b  # (H, V), (V,)
        n, v = FastStep.top(state).size(0), head_b.numel()
        bias = head_b.clone()
        if unk_id is not None:  # the unknown symbol is never drawn
            bias[unk_id] = -math.inf
        if temperature > 0 and self.filter_fn is None:  # fold 1/T into the product and its addend
            t = max(temperature, 1e-30)  # as in filter_logits: a smaller T overflows float32 (and is greedy anyway)
            head_w_t, bias = head_w_t / t, bias / t
        self.w, self.bias = head_w_t, bias
        # The addend of each round's product: bias + Gumbel noise (just the bias when greedy or filtered).
        self.addend = bias.new_empty(k, n, v).copy_(bias)  # (K, N, V), its own memory
        self.state = _clone(state)  # the input buffers a graph reads
        self.program = compiled_rounds() if mode == "compiled" else rounds
        self.graph: torch.cuda.CUDAGraph | None = None
        self.out: tuple[Tensor, Tensor, Tensor] | None = None  # a graph's output buffers

    def _call(self) -> tuple[Tensor, Tensor, Tensor]:
        s = self.step
        with tf32(s.cuda):
            return self.program(s.cell, s.table, s.w_in_t, s.b_in, s.w_hh_t, s.b_hh, self.filter_fn,
                                self.w, self.bias, self.addend, *s.split(self.state))

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: library handles and workspaces exist before capture
            self._call()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = self._call()

    def _run_compiled(self) -> tuple[Tensor, Tensor, Tensor]:
        try:
            return self._call()
        except Exception as e:  # noqa: BLE001 - torch.compile's failures have no common type
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ChargenError(f"torch.compile could not compile the sampling loop ({type(e).__name__}: {first})",
                               "it needs a C++ compiler (gcc or clang) on the PATH; or sample without --compile") from e

    @torch.inference_mode()
    def run(self, state, noise) -> tuple[Tensor, object]:
        _copy_state(self.state, state)
        if self.temperature > 0:
            block = noise.take(self.k)  # (K, N, V)
            if self.filter_fn is not None:
                self.addend.copy_(block)
            else:
                torch.add(block, self.bias, out=self.addend)
        if self.mode == "graph":
            if self.graph is None:
                self._capture()
            self.graph.replay()
            ids, hs, cs = self.out
        elif self.mode == "compiled":
            ids, hs, cs = self._run_compiled()
        else:
            ids, hs, cs = self._call()
        _copy_state(self.state, self.step.join(hs, cs))
        return ids.to("cpu", copy=True), self.state  # a copy: the next run overwrites the buffers


def _clone(state):
    return tuple(t.clone() for t in state) if isinstance(state, tuple) else state.clone()


def _copy_state(dst, src) -> None:
    """Copy a FastStep state into buffers of the same structure (a tensor, or an LSTM's pair)."""
    for a, b in zip(dst if isinstance(dst, tuple) else (dst,), src if isinstance(src, tuple) else (src,)):
        if a is not b:
            a.copy_(b)
