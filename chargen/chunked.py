"""Sampling a chunk of K characters per launch: K rounds of draw-then-feed-back as one
program, captured once as a CUDA graph and replayed.

An eager loop on a GPU spends its time launching kernels, a dozen or more per
character, each costing more to launch than to run. A CUDA graph launches a whole
chunk's kernels at once. The chunk holds the whole loop body, the draw included: the
temperature is folded into the output weights, and the output bias and the Gumbel
noise into one addend, so a draw is one matrix product and one argmax. Top-k and
top-p add their filtering ops, still inside the graph.

The noise comes from the sampler's GumbelNoise in the order the step-by-step path
draws it, so both paths give the same text from the same seed wherever their logits
agree (they differ only by rounding: (xW + b) / T is computed as x(W / T) + b / T).
On the CPU the same program runs without capture, compiled by TorchScript when no
filter is on (scripted.py), or, on request, by torch.compile (inductor.py).
"""
from __future__ import annotations

import math
import os
from typing import Callable

import torch

from . import inductor, scripted
from .fastpath import FastStep, tf32

SCRIPTED = os.environ.get("CHARGEN_SCRIPTED", "1") != "0"  # 0: the Python program on the CPU too, for comparisons


def chunk_size(device: torch.device, streams: int, vocab_size: int) -> int:
    """Characters per chunk: 64 on a GPU, 32 on a CPU, fewer when the noise block (K, N, V)
    would pass 16 MB. On a 2-core CPU, single-stream GRU 2x256, chunks of 32 drew about 25%
    more characters per second than one step at a time, chunks of 8 about 15% (benchmarks/README.md)."""
    most = 64 if device.type == "cuda" else 32
    return max(1, min(most, (1 << 22) // (streams * vocab_size)))


class Chunk:
    """K draw-and-feed rounds for N streams over static buffers (what a CUDA graph needs).

    `run(state, noise)` copies `state` into the buffers, fills the noise for K rounds,
    runs the program (replays the graph on CUDA, capturing it on the first call) and
    returns the K x N ids on the CPU and the new state, which lives in this object's
    buffers until the next run.
    """

    def __init__(self, step: FastStep, state, k: int, temperature: float, unk_id: int | None,
                 filter_fn: Callable[[torch.Tensor], torch.Tensor] | None = None, compile: bool = False) -> None:
        """`filter_fn` maps logits (N, V) to temperature-scaled, top-k/top-p filtered ones; None when
        no filter is on, so that 1/T can fold into the weights. `compile` (CPU only; a GPU replays a
        CUDA graph) runs the rounds as torch.compile compiles them, filters included (inductor.py)."""
        self.step, self.k, self.temperature = step, k, temperature
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
        self.ids = torch.zeros(k, n, dtype=torch.long, device=bias.device)  # (K, N)
        self.state = tuple(t.clone() for t in state) if isinstance(state, tuple) else state.clone()
        self.graph: torch.cuda.CUDAGraph | None = None  # captured at the first run on CUDA
        # On the CPU, without filters, the rounds run as TorchScript (scripted.py): the same ops
        # without the interpreter's overhead. The filters are Python, so they keep this program.
        # `compile` replaces both with torch.compile's program (inductor.py), filters included.
        self.inductor = compile and step.table.is_cpu
        self.scripted = (not step.cuda and not self.inductor and self.filter_fn is None and SCRIPTED
                         and scripted.compiled() is not None)

    def _program(self) -> None:
        if self.inductor:
            _copy_state(self.state, inductor.rounds(self.step, self.filter_fn, self.w, self.bias, self.addend,
                                                    self.ids, self.state))
            return
        if self.scripted:
            try:
                new = scripted.rounds(self.step, self.w, self.addend, self.ids, self.state)
            except (RuntimeError, torch.jit.Error):  # compiled, but cannot run here: the Python program can
                self.scripted = False
            else:
                _copy_state(self.state, new)
                return
        state = self.state
        top = FastStep.top(state)  # (N, H)
        for i in range(self.k):
            with tf32(self.step.cuda):
                if self.filter_fn is not None:
                    scores = self.filter_fn(torch.addmm(self.bias, top, self.w)) + self.addend[i]  # (N, V)
                else:
                    scores = torch.addmm(self.addend[i], top, self.w)  # (N, V): logits / T + noise
            torch.argmax(scores, dim=-1, out=self.ids[i])
            top, state = self.step.cells(self.ids[i], state)
        _copy_state(self.state, state)

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: library handles and workspaces exist before capture
            self._program()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._program()

    @torch.inference_mode()
    def run(self, state, noise) -> tuple[torch.Tensor, object]:
        if self.step.cuda and self.graph is None:
            self._capture()
        _copy_state(self.state, state)
        if self.temperature > 0:
            block = noise.take(self.k)  # (K, N, V)
            if self.filter_fn is not None:
                self.addend.copy_(block)
            else:
                torch.add(block, self.bias, out=self.addend)
        if self.graph is not None:
            self.graph.replay()
        else:
            self._program()
        return self.ids.to("cpu", copy=True), self.state  # a copy: the next run overwrites the buffer


def _copy_state(dst, src) -> None:
    """Copy a FastStep state into buffers of the same structure (a tensor, or an LSTM's pair)."""
    for a, b in zip(dst if isinstance(dst, tuple) else (dst,), src if isinstance(src, tuple) else (src,)):
        if a is not b:
            a.copy_(b)
