"""What to generate and how to draw: the sampling settings, temperature with top-k and
top-p filtering, and the seeded Gumbel noise that turns an argmax into a draw."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ChargenError
from ..threads import check_threads


@dataclass(frozen=True)
class SampleConfig:
    """What to generate. `temperature=0` is greedy (argmax, the seed is then irrelevant);
    `top_k=0` and `top_p=1` switch those filters off; `seed=None` draws a fresh seed; `compile`
    runs a CPU's chunks as torch.compile compiles them (rounds.py: faster once compiled);
    `threads` is the CPU thread count while drawing (0: one for one stream, whose steps are too
    small for a second; for many, chargen/threads.py's count that follows the machine)."""

    length: int = 500
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    prime: str = ""
    seed: int | None = None
    num_samples: int = 1
    stop: str = ""
    compile: bool = False  # CPU: run the chunked rounds as torch.compile compiles them (rounds.py)
    threads: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 0:
            raise ChargenError(f"length must be a non-negative integer, got {self.length!r}", "try --length 500")
        if not (isinstance(self.temperature, (int, float)) and math.isfinite(self.temperature)
                and 0 <= self.temperature <= 100):
            raise ChargenError(f"temperature must be between 0 and 100, got {self.temperature!r}",
                               "try --temp 0.8 (0 = always the likeliest character)")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ChargenError(f"top-k must be 0 (off) or a positive integer, got {self.top_k!r}", "try --top-k 10")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            raise ChargenError(f"top-p must be in (0, 1], got {self.top_p!r}", "try --top-p 0.9")
        if not isinstance(self.num_samples, int) or not 1 <= self.num_samples <= 65536:
            raise ChargenError(f"num-samples must be from 1 to 65536, got {self.num_samples!r}", "try --num-samples 3")
        if self.seed is not None and not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ChargenError(f"seed must be a non-negative integer, got {self.seed!r}", "try --seed 1")
        check_threads(self.threads)
        if not isinstance(self.compile, bool):
            raise ChargenError(f"compile must be True or False, got {self.compile!r}", "pass compile=True")


def filter_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """Scale (N, V) logits by 1/temperature and set those outside top-k / the top-p nucleus to -inf."""
    # Below 1e-30 logits / temperature overflows float32 (NaN after softmax); it is greedy there anyway.
    logits = logits.float() / max(temperature, 1e-30)  # (N, V)
    if 0 < top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (N, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Keep a character if the mass before it is below top_p: the likeliest always survives.
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p  # (N, V)
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


class GumbelNoise:
    """Gumbel(0, 1) noise for N streams over V characters from a seeded generator, made ahead in bulk.

    argmax(logits / T + g) with g ~ Gumbel is an exact draw from softmax(logits / T)
    (the Gumbel-max trick): three cheap ops a step instead of softmax, cumsum and a
    search. Both sampling paths take their noise from here in the same order, so with
    the same seed they draw the same characters whenever their logits agree.

    `skip`, the unknown symbol's id, is never drawn: its column is -inf and spends no
    random numbers, so the other columns get what a vocabulary without the symbol got,
    and a model that gained the symbol on loading (a format 1 checkpoint) draws the
    same text from the same seed as before.
    """

    def __init__(self, gen: torch.Generator, n: int, v: int, skip: int | None = None) -> None:
        drawn = v - (skip is not None)  # characters that get noise
        self.gen, self.skip = gen, skip
        self.shape = (max(1, min(1024, (1 << 20) // (n * max(drawn, 1)))), n, drawn)  # about 4 MB at a time
        self.buf, self.i = torch.empty(0), 0

    def _refill(self) -> None:
        u = torch.rand(self.shape, generator=self.gen, device=self.gen.device)  # (K, N, V') in [0, 1)
        g = -torch.log(-torch.log(u))  # u = 0 gives -inf: never chosen, as it should be
        if self.skip is not None:
            never = torch.full_like(g[..., :1], -math.inf)  # (K, N, 1)
            g = torch.cat([g[..., : self.skip], never, g[..., self.skip:]], dim=-1)  # (K, N, V)
        self.buf, self.i = g, 0

    def next(self) -> torch.Tensor:
        """Noise for one step: (N, V)."""
        if self.i == len(self.buf):
            self._refill()
        self.i += 1
        return self.buf[self.i - 1]

    def take(self, k: int) -> torch.Tensor:
        """Noise for the next k steps, (k, N, V): the same values k calls of next() would give."""
        parts = []
        while k:
            if self.i == len(self.buf):
                self._refill()
            m = min(k, len(self.buf) - self.i)
            parts.append(self.buf[self.i: self.i + m])
            self.i, k = self.i + m, k - m
        return parts[0] if len(parts) == 1 else torch.cat(parts)
