"""Chunk's draw-and-feed rounds as TorchScript, for the CPU.

On a CPU a chunk's program cannot be captured as a CUDA graph, and run from Python
each of its two dozen small ops a character pays the interpreter's call overhead. The
same rounds compiled by TorchScript run the same ATen kernels in the same order (so
they give the same ids and state, bit for bit, as FastStep's Python) with that
overhead gone: on a 2-core CPU, single-stream GRU 2x256, 1.5-1.7x the characters per
second of the Python program (benchmarks/README.md).
"""
from __future__ import annotations

import functools
import warnings
from typing import Callable, List, Tuple

import torch
from torch import Tensor

from .fastpath import FastStep, run_layers


def _rounds(cell: str, table: Tensor, w_in: List[Tensor], b_in: List[Tensor], w_hh: Tensor, b_hh: Tensor,
            head_w: Tensor, addend: Tensor, ids: Tensor, hs: Tensor, cs: Tensor) -> Tuple[Tensor, Tensor]:
    """addend.size(0) rounds: draw ids[i] (N,) = argmax(top h @ head_w + addend[i]), feed it."""
    for i in range(addend.size(0)):
        torch.argmax(torch.addmm(addend[i], hs[-1], head_w), dim=-1, out=ids[i])  # (N,)
        hs, cs = run_layers(cell, False, table.index_select(0, ids[i]), w_in, b_in, w_hh, b_hh, hs, cs)
    return hs, cs


@functools.cache
def compiled() -> Callable | None:
    """The rounds, scripted once per process (about 0.05 s with the first run); None where this torch cannot
    script them (TorchScript is deprecated), and the caller runs its Python program."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a user has nothing to act on
            return torch.jit.script(_rounds)
    except Exception:  # noqa: BLE001 - any failure to compile means: no fast program
        return None


def rounds(step: FastStep, head_w: Tensor, addend: Tensor, ids: Tensor, state):
    """Run addend.size(0) rounds on the CPU for `step` from `state` (FastStep's, not modified),
    drawing with the output weights `head_w` (H, V) (1/T folded in) and `addend` (K, N, V)
    (the output bias / T plus Gumbel noise, or the bias alone when greedy); ids (K, N)
    receive the draws. Returns the new state."""
    hs, cs = compiled()(step.cell, step.table, step.w_in_t, step.b_in, step.w_hh_t, step.b_hh, head_w, addend,
                        ids, *step.split(state))
    return step.join(hs, cs)
