"""Generating text from a trained model: warm the state on the prime text once,
then draw one character per step, carrying the state.

Temperature, top-k and top-p live here, not in the model. Text is yielded as it is
made; writing it anywhere is the caller's job.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterator

import torch

from .chunked import Chunk, chunk_size
from .corpus import Vocab
from .errors import ChargenError
from .fastpath import FastStep
from .model import CharRNN


@dataclass(frozen=True)
class SampleConfig:
    """What to generate. `temperature=0` is greedy (argmax, the seed is then irrelevant);
    `top_k=0` and `top_p=1` switch those filters off; `seed=None` draws a fresh seed; `compile`
    runs a CPU's chunks as torch.compile compiles them (inductor.py: faster once compiled)."""

    length: int = 500
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    prime: str = ""
    seed: int | None = None
    num_samples: int = 1
    stop: str = ""
    compile: bool = False  # CPU: run the chunked rounds as torch.compile compiles them (inductor.py)

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
    """Gumbel(0, 1) noise for N streams over V characters from a seeded generator, made in blocks.

    argmax(logits / T + g) with g ~ Gumbel is an exact draw from softmax(logits / T)
    (the Gumbel-max trick): three cheap ops a step instead of softmax, cumsum and a
    search. Both sampling paths take their noise from here in the same order, so with
    the same seed they draw the same characters whenever their logits agree.
    """

    def __init__(self, gen: torch.Generator, n: int, v: int) -> None:
        self.gen, self.shape = gen, (max(1, min(1024, (1 << 20) // (n * v))), n, v)  # about 4 MB a block
        self.buf, self.i = torch.empty(0), 0

    def _refill(self) -> None:
        u = torch.rand(self.shape, generator=self.gen, device=self.gen.device)  # (K, N, V) in [0, 1)
        self.buf = -torch.log(-torch.log(u))  # u = 0 gives -inf: never chosen, as it should be
        self.i = 0

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


def pick(logits: torch.Tensor, cfg: SampleConfig, noise: GumbelNoise) -> torch.Tensor:
    """Next ids (N,) from last-step logits (N, V): argmax at temperature 0, else a draw."""
    if cfg.temperature == 0:
        return logits.argmax(dim=-1)
    return (filter_logits(logits, cfg.temperature, cfg.top_k, cfg.top_p) + noise.next()).argmax(dim=-1)


def start_ids(vocab: Vocab, prime: str) -> torch.Tensor:
    """Ids to warm the state on: the prime, or a newline (else the first character) when it is empty.

    A character the model never saw is its unknown symbol when it has one; otherwise
    ChargenError names it.
    """
    if prime:
        return vocab.encode(prime)
    return torch.tensor([vocab.chars.index("\n") if "\n" in vocab.chars else 0])


class Sampler:
    """A model with a carried state for N streams: feed it text, draw characters from it.

    `feed` runs text through the model as one sequence (any length, one call) and
    leaves the state after its last character; `draw` then yields one id per stream
    per step, feeding each back. The state persists across calls until `reset`.
    `fast` uses FastStep for the single steps (the same function with less overhead)
    and lets `draw(n, ahead=True)` work a chunk at a time (chunked.py; a CUDA graph on
    a GPU). The model is moved to `device` and put in eval mode.
    """

    def __init__(self, model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu",
                 fast: bool = True) -> None:
        self.device = torch.device(device)
        self.model, self.vocab, self.cfg = model.to(self.device).eval(), vocab, cfg
        self.step = FastStep(model) if fast else None
        self.chunk: Chunk | None = None
        gen = torch.Generator(self.device)
        if cfg.seed is None:
            gen.seed()
        else:
            gen.manual_seed(cfg.seed)
        self.noise = GumbelNoise(gen, cfg.num_samples, len(vocab))
        # The unknown symbol stands for characters too rare to learn: it is never drawn.
        self.unk = None if vocab.unk_id is None else torch.tensor([vocab.unk_id], device=self.device)
        self.reset()

    def reset(self) -> None:
        """Forget everything fed or drawn: the next draw starts from a zero state."""
        self.hidden, self.last = None, None

    @torch.inference_mode()
    def feed(self, text: str) -> None:
        """Warm the state on `text`; raises ChargenError naming characters the model has never seen."""
        self._feed_ids(start_ids(self.vocab, text))

    def _make_chunk(self) -> Chunk:
        cfg, v = self.cfg, len(self.vocab)
        filtered = 0 < cfg.top_k < v or cfg.top_p < 1  # else 1/T folds into the output weights
        filters = functools.partial(filter_logits, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)
        return Chunk(self.step, self.hidden, chunk_size(self.device, cfg.num_samples, v), cfg.temperature,
                     self.vocab.unk_id, filters if filtered else None, cfg.compile)

    def _feed_ids(self, ids: torch.Tensor) -> None:
        n = self.cfg.num_samples
        if self.hidden is None:  # all streams start alike: run the text once and copy the state
            logits, hidden = self.model(ids.to(self.device)[None])  # (1, P, V)
            expand = lambda h: h.expand(-1, n, -1).contiguous()  # (L, 1, H) -> (L, N, H)
            self.hidden = tuple(map(expand, hidden)) if isinstance(hidden, tuple) else expand(hidden)
            self.last = logits[:, -1].float().expand(n, -1)  # (N, V)
        else:
            logits, self.hidden = self.model(ids.to(self.device).expand(n, -1), self.hidden)  # (N, P, V)
            self.last = logits[:, -1].float()  # (N, V)
        if self.step is not None:  # FastStep's state is nn.RNN's hidden, in float32
            self.hidden = self.step.from_hidden(self.hidden)

    def draw(self, n: int, ahead: bool = False) -> Iterator[torch.Tensor]:
        """Yield n tensors of next ids, each (num_samples,), on the CPU.

        Without `ahead`, each character is fed back before it is handed out, so the state
        holds exactly what the caller has read, even if it stops early (--stop, interactive
        mode). With `ahead` (and `fast`), whole chunks are drawn before any is handed out,
        the last one too (its surplus is dropped): much faster on a GPU, but the state ends
        up to a chunk further on than the characters handed out.

        Inference mode is entered per chunk or step, not around the generator: a generator
        decorated with it re-enters the mode at every character it yields (under cProfile,
        about 3 us a character on a 2-core CPU, where a chunked character costs 30-80 us).
        """
        if self.last is None:
            self.feed("")
        if ahead and self.step is not None:
            self.chunk = self.chunk or self._make_chunk()
            while n > 0:
                with torch.inference_mode():
                    ids, self.hidden = self.chunk.run(self.hidden, self.noise)  # (K, N)
                    self.last = self.step.head(FastStep.top(self.hidden))
                yield from ids[:n]
                n -= self.chunk.k
        for _ in range(n):
            with torch.inference_mode():
                nxt = self._step()
            yield nxt

    def _step(self) -> torch.Tensor:
        """Draw the next ids (N,), feed them back, and return them on the CPU."""
        logits = self.last if self.unk is None else self.last.index_fill(1, self.unk, -math.inf)
        nxt = pick(logits, self.cfg, self.noise)  # (N,)
        # Feed it back before handing it out, so the state holds every character the
        # caller has seen even if it stops reading here (--stop, interactive mode).
        if self.step is not None:
            self.last, self.hidden = self.step(nxt, self.hidden)  # (N, V)
        else:
            logits, self.hidden = self.model(nxt[:, None], self.hidden)  # (N, 1, V)
            self.last = logits[:, -1].float()
        return nxt.cpu()


def generate_ids(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu",
                 fast: bool = True) -> Iterator[torch.Tensor]:
    """Yield cfg.length tensors of next ids, each (num_samples,), after warming on cfg.prime.

    The prime is checked at once: a ChargenError names characters the model has never
    seen before anything is generated. For the best single-stream speed on a small
    CPU, run with torch.set_num_threads(1) or 2 (see benchmarks/README.md).
    """
    sampler = Sampler(model, vocab, cfg, device, fast)
    sampler.feed(cfg.prime)
    return sampler.draw(cfg.length, ahead=True)


def generate(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu") -> Iterator[str]:
    """Yield the text of a single sample one character at a time (the prime is not repeated).

    With cfg.stop set, the sample ends right after the first occurrence of that string.
    """
    if cfg.num_samples != 1:
        raise ChargenError("generate() streams one sample", "use sample_texts() for several")
    ids = generate_ids(model, vocab, cfg, device)  # checks the prime now, not at the first character
    return stop_after((vocab.chars[int(nxt)] for nxt in ids), cfg.stop)


def stop_after(chars: Iterator[str], stop: str) -> Iterator[str]:
    """Pass characters through, ending right after the first occurrence of `stop` (never, if empty)."""
    tail = ""
    for ch in chars:
        yield ch
        if stop:
            tail = (tail + ch)[-len(stop):]
            if tail == stop:
                return


def sample_texts(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu") -> list[str]:
    """cfg.num_samples texts, each the prime followed by up to cfg.length generated characters
    (cut right after the first cfg.stop, when set)."""
    columns = [nxt.tolist() for nxt in generate_ids(model, vocab, cfg, device)]
    texts = ["".join(vocab.chars[col[i]] for col in columns) for i in range(cfg.num_samples)]
    return [cfg.prime + cut_at_stop(t, cfg.stop) for t in texts]


def cut_at_stop(text: str, stop: str) -> str:
    """`text` up to and including the first `stop` (all of it when stop is empty or absent)."""
    at = text.find(stop) if stop else -1
    return text if at < 0 else text[: at + len(stop)]
