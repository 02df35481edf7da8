"""Generating text from a trained model: warm the state on the prime text once,
then draw characters in rounds (rounds.py), carrying the state.

Text is yielded as it is made; writing it anywhere is the caller's job.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import TypeVar

import torch

from ..data import Vocab
from ..data.vocab import utf8_bytes
from ..errors import ChargenError
from ..model import CharRNN
from ..threads import Threads
from .draw import GumbelNoise, SampleConfig, filter_logits
from .rounds import Chunk, chunk_size
from .step import FastStep

T = TypeVar("T", str, bytes)  # text, or a bytes model's bytes as drawn


def start_ids(vocab: Vocab, prime: str) -> torch.Tensor:
    """Ids to warm the state on: the prime, or a newline (else the first character) when it is empty.

    A character the model never saw is read as its unknown symbol (a vocabulary without
    one, built by hand, raises ChargenError naming it); a bytes model reads its UTF-8 bytes.
    """
    if prime:
        check_text(vocab, prime)
        return vocab.encode(prime)
    return torch.tensor([vocab.chars.index("\n") if "\n" in vocab.chars else 0])


def check_text(vocab: Vocab, text: str, what: str = "the prime") -> None:
    """ChargenError for a chars model given text that holds bytes that are not UTF-8 (lone surrogates, as Python
    carries such bytes from a command line): it reads characters, and those are none. A bytes model reads each
    as the byte it stands for."""
    if vocab.kind == "bytes":
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ChargenError(f"{what} holds {utf8_bytes(text[e.start])!r}, a byte that is not UTF-8, at character "
                           f"{e.start + 1}", "pass it as UTF-8 text: check the terminal's encoding, e.g. "
                                             "LANG=C.UTF-8") from None


class Sampler:
    """A model with a carried state for N streams: feed it text, draw characters from it.

    `feed` runs text through the model as one sequence (any length, one call) and leaves
    the state after its last character; `draw` then yields one id per stream per step,
    feeding each back. The state persists across calls until `reset`. The model is moved
    to `device` and put in eval mode; its weights are rearranged once (FastStep) and the
    rounds run one way, chosen here: a CUDA graph on a GPU, compiled with `cfg.compile`
    on a CPU, else eagerly.
    """

    def __init__(self, model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model, self.vocab, self.cfg = model.to(self.device).eval(), vocab, cfg
        self.step = FastStep(self.model)
        self.mode = "graph" if self.device.type == "cuda" else ("compiled" if cfg.compile else "eager")
        gen = torch.Generator(self.device)
        if cfg.seed is None:
            gen.seed()
        else:
            gen.manual_seed(cfg.seed)
        self.noise = GumbelNoise(gen, cfg.num_samples, len(vocab), skip=vocab.unk_id)
        self.chunks: dict[int, Chunk] = {}  # by size: a whole chunk, or one round at a time
        self.reset()

    def reset(self) -> None:
        """Forget everything fed or drawn: the next draw starts from a zero state."""
        self.state: object = None  # FastStep's state once something is fed

    def feed(self, text: str) -> None:
        """Warm the state on `text` (characters the model never saw read as its unknown symbol,
        or raise ChargenError naming them when it has none)."""
        ids = start_ids(self.vocab, text).to(self.device)
        n = self.cfg.num_samples
        with torch.inference_mode():
            if self.state is None:  # all streams start alike: run the text once and copy the state
                _, hidden = self.model(ids[None])  # (1, P, V)

                def expand(h):
                    return h.expand(-1, n, -1).contiguous()  # (L, 1, H) -> (L, N, H)

                hidden = tuple(map(expand, hidden)) if isinstance(hidden, tuple) else expand(hidden)
            else:
                _, hidden = self.model(ids.expand(n, -1), self.state)  # (N, P, V)
            self.state = self.step.from_hidden(hidden)  # FastStep's state: nn.RNN's hidden, in float32

    def _chunk(self, k: int) -> Chunk:
        if k not in self.chunks:
            cfg, v = self.cfg, len(self.vocab)
            filtered = 0 < cfg.top_k < v or cfg.top_p < 1  # else 1/T folds into the output weights
            filters = functools.partial(filter_logits, temperature=cfg.temperature, top_k=cfg.top_k,
                                        top_p=cfg.top_p)
            self.chunks[k] = Chunk(self.step, self.state, k, cfg.temperature, self.vocab.unk_id,
                                   filters if filtered else None, self.mode)
        return self.chunks[k]

    def draw(self, n: int, ahead: bool = False) -> Iterator[torch.Tensor]:
        """Yield n tensors of next ids, each (num_samples,), on the CPU.

        Without `ahead`, each character is fed back before it is handed out, so the state
        holds exactly what the caller has read, even if it stops early (--stop, interactive
        mode). With `ahead`, whole chunks are drawn before any is handed out, the last one
        too (its surplus is dropped): much faster, but the state ends up to a chunk further
        on than the characters handed out. Both draw the same characters from the same seed.
        """
        if self.state is None:
            self.feed("")
        k = chunk_size(self.device, self.cfg.num_samples, len(self.vocab)) if ahead else 1
        chunk = self._chunk(k)
        threads = self._threads()
        try:
            while n > 0:
                t0 = time.perf_counter()
                ids, self.state = chunk.run(self.state, self.noise)  # (K, N), on the CPU: the chunk has run
                threads.step(time.perf_counter() - t0)
                yield from ids[:n]
                n -= k
        finally:
            threads.restore()  # the caller's count back once the draw ends, or is dropped

    def _threads(self) -> Threads:
        """The thread count while drawing: cfg.threads, else on a CPU one for one stream and the
        machine-following count for many; on a GPU the count the process has."""
        cpu = self.device.type == "cpu"
        return Threads.for_loop(self.cfg.threads or (1 if cpu and self.cfg.num_samples == 1 else 0), adapt=cpu)


def generate_ids(model: CharRNN, vocab: Vocab, cfg: SampleConfig,
                 device: torch.device | str = "cpu") -> Iterator[torch.Tensor]:
    """Yield cfg.length tensors of next ids, each (num_samples,), after warming on cfg.prime.

    The prime is read at once, before anything is generated (characters the model never
    saw as its unknown symbol, which is never drawn). cfg.threads sets the CPU thread count
    while drawing (SampleConfig).
    """
    sampler = Sampler(model, vocab, cfg, device)
    sampler.feed(cfg.prime)
    return sampler.draw(cfg.length, ahead=True)


def generate(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu") -> Iterator[str]:
    """Yield the text of a single sample as it is drawn (the prime is not repeated): one character
    at a time, or for a bytes model each character once its last byte is drawn (text_pieces).

    With cfg.stop set, the sample ends right after the first occurrence of that string.
    """
    if cfg.num_samples != 1:
        raise ChargenError("generate() streams one sample", "use sample_texts() for several")
    ids = generate_ids(model, vocab, cfg, device)  # reads the prime now, not at the first character
    return text_until_stop(vocab, ids, cfg.stop)


def text_until_stop(vocab: Vocab, ids: Iterator, stop: str) -> Iterator[str]:
    """The text of a stream of ids as it completes (text_pieces), ending right after the first `stop`: found in
    the text for a chars model, in the drawn bytes for a bytes model (`stop` read as by utf8_bytes, so that
    U+DCHH, which --stop '\\xHH' gives a bytes model, is the byte HH and any byte can end a sample)."""
    if vocab.kind == "bytes" and stop:
        drawn = stop_after((bytes([int(nxt)]) for nxt in ids), utf8_bytes(stop))  # one byte an item
        return text_pieces(vocab, (byte[0] for byte in drawn))
    return stop_after(text_pieces(vocab, ids), stop)


def text_pieces(vocab: Vocab, ids: Iterator) -> Iterator[str]:
    """The text of a stream of ids (each an int or a tensor of one) as it completes: for a bytes
    model a character split over several ids comes out whole after its last, a byte sequence that
    is not UTF-8 as U+FFFD; no empty pieces. The kind is looked at once, not per character."""
    if vocab.kind == "chars":  # one character per id: a lookup, nothing to wait for
        chars = vocab.chars
        return (chars[int(nxt)] for nxt in ids)
    return _utf8_pieces(vocab.text_decoder(), ids)


def _utf8_pieces(decoder, ids: Iterator) -> Iterator[str]:
    for nxt in ids:
        if piece := decoder.decode([int(nxt)]):
            yield piece
    if rest := decoder.flush():
        yield rest


def stop_after(items: Iterator[T], stop: T) -> Iterator[T]:
    """Pass text (or bytes) through item by item, ending right after the first occurrence of `stop`
    (never, if empty); an item may hold several characters (a bytes model's U+FFFD and what followed it)."""
    return _through_stop(items, stop) if stop else items


def _through_stop(items: Iterator[T], stop: T) -> Iterator[T]:
    tail = stop[:0]  # what may begin a stop that ends in the next item
    for item in items:
        seen = tail + item
        at = seen.find(stop)
        if at >= 0:
            yield item[: at + len(stop) - len(tail)]
            return
        yield item
        tail = seen[len(seen) - len(stop) + 1:] if len(stop) > 1 else stop[:0]


def sample_texts(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu") -> list[str]:
    """cfg.num_samples texts, each the prime followed by up to cfg.length generated characters
    (cut right after the first cfg.stop, when set)."""
    columns = [nxt.tolist() for nxt in generate_ids(model, vocab, cfg, device)]
    rows = [[col[i] for col in columns] for i in range(cfg.num_samples)]
    return [shown_prime(vocab, cfg.prime) + decode_until_stop(vocab, row, cfg.stop) for row in rows]


def sample_bytes(model: CharRNN, vocab: Vocab, cfg: SampleConfig, device: torch.device | str = "cpu") -> list[bytes]:
    """A bytes model's cfg.num_samples samples exactly as drawn: each the prime's UTF-8 bytes followed
    by up to cfg.length drawn bytes (cut right after the first occurrence of cfg.stop's UTF-8 bytes)."""
    require_bytes(vocab)
    columns = [nxt.tolist() for nxt in generate_ids(model, vocab, cfg, device)]
    stop = utf8_bytes(cfg.stop)
    return [utf8_bytes(cfg.prime) + cut_at_stop(bytes(col[i] for col in columns), stop)
            for i in range(cfg.num_samples)]


def require_bytes(vocab: Vocab) -> None:
    """ChargenError unless `vocab` is a bytes vocabulary: raw output is a bytes model's."""
    if vocab.kind != "bytes":
        raise ChargenError("raw bytes come from a model with a bytes vocabulary, and this one reads characters",
                           "drop --raw: a chars model's text is written as UTF-8 already")


def shown_prime(vocab: Vocab, prime: str) -> str:
    """The prime as a sample shows it: itself, or for a bytes model its bytes read as UTF-8 (a byte
    that came from the command line as a lone surrogate, not UTF-8, as U+FFFD: printable)."""
    return prime if vocab.kind == "chars" else vocab.decode(vocab.encode(prime))


def decode_until_stop(vocab: Vocab, ids: list[int], stop: str) -> str:
    """The text of `ids` up to and including the first `stop`, found as text_until_stop finds it."""
    if vocab.kind == "bytes":
        return cut_at_stop(bytes(ids), utf8_bytes(stop)).decode("utf-8", "replace")
    return cut_at_stop(vocab.decode(ids), stop)


def cut_at_stop(text: T, stop: T) -> T:
    """`text` (or bytes) up to and including the first `stop` (all of it when stop is empty or absent)."""
    at = text.find(stop) if stop else -1
    return text if at < 0 else text[: at + len(stop)]
