"""Chunk's draw-and-feed rounds compiled by torch.compile (Inductor), for long samples on a CPU.

TorchScript (scripted.py) removes the interpreter from a chunk, but every ATen op it
runs still costs about a microsecond of dispatch: on a 2-core CPU about 23 us a
character whatever the model's size. Inductor fuses each round's gate arithmetic into
generated C++ loops and, with its C++ wrapper, calls them without Python, which leaves
about 7 us a character (benchmarks/README.md, `cpu_sample_probe.py --programs`). The
price is compilation: a C++ compiler on the PATH, and 5-30 s the first time a model
shape is sampled (Inductor caches the result on disk; about 3 s on later runs). So it
is opt-in (`--compile`), for samples long enough to pay that back.

The rounds are the same function as the Python program's, filters included, but
Inductor's fused loops round differently in the last bit, so the text may differ from
the uncompiled paths' where two characters' scores nearly tie. The same seed gives
the same text on the same path.
"""
from __future__ import annotations

import functools
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from .errors import ChargenError
from .fastpath import FastStep, run_layers


def _rounds(cell: str, table: Tensor, w_in: List[Tensor], b_in: List[Tensor], w_hh: Tensor, b_hh: Tensor,
            filter_fn: Optional[Callable[[Tensor], Tensor]], head_w: Tensor, bias: Tensor, addend: Tensor,
            hs: Tensor, cs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """addend.size(0) rounds, unrolled by the compiler: the drawn ids (K, N) and the new hs, cs."""
    ids = []
    for i in range(addend.size(0)):
        if filter_fn is None:  # 1/T is folded into head_w, the bias into the addend
            scores = torch.addmm(addend[i], hs[-1], head_w)  # (N, V)
        else:
            scores = filter_fn(torch.addmm(bias, hs[-1], head_w)) + addend[i]
        nxt = torch.argmax(scores, dim=-1)  # (N,)
        ids.append(nxt)
        hs, cs = run_layers(cell, False, table.index_select(0, nxt), w_in, b_in, w_hh, b_hh, hs, cs)
    return torch.stack(ids), hs, cs


@functools.cache
def compiled() -> Callable:
    """The rounds as torch.compile returns them (compiled lazily, at the first call per shape)."""
    return torch.compile(_rounds, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})


def rounds(step: FastStep, filter_fn, head_w: Tensor, bias: Tensor, addend: Tensor, ids: Tensor, state):
    """Run addend.size(0) rounds on the CPU for `step` from `state` (not modified), as Chunk's
    Python program does: ids (K, N) receive the draws; returns the new state.

    A failure to compile (no C++ compiler, a Python torch.compile does not support) is a
    ChargenError: the user asked for compilation and can drop --compile."""
    try:
        new_ids, hs, cs = compiled()(step.cell, step.table, step.w_in_t, step.b_in, step.w_hh_t, step.b_hh,
                                     filter_fn, head_w, bias, addend, *step.split(state))
    except Exception as e:  # noqa: BLE001 - torch.compile's failures have no common type
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ChargenError(f"torch.compile could not compile the sampling loop ({type(e).__name__}: {first})",
                           "it needs a C++ compiler (gcc or clang) on the PATH; or sample without --compile") from e
    ids.copy_(new_ids)
    return step.join(hs, cs)
