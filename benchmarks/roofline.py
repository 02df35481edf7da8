#!/usr/bin/env python3
"""The measured roofline: this machine's fp32 sgemm peak and memory bandwidth, and the share of
that peak chargen and the plain loop (benchmarks/baseline.py) reach, training and sampling, for
each cell at the default and the reference shapes, all in one process and one run.

    python benchmarks/roofline.py [--threads 0] [--rounds 5] [--cells gru,lstm,rnn] [--no-sample]

FLOPs are counted from the shape, not measured. Forward multiply-adds per character:
    sum over layers of G * H * (I_l + H)  +  H * V
with G = 1 (rnn), 3 (gru), 4 (lstm), I_0 = E, I_l = H above; the embedding is a lookup and counts
nothing, biases and element-wise ops count nothing. A training character costs 3 x that (forward,
backward to the activations, backward to the weights) x 2 FLOPs per multiply-add; a sampled
character costs 1 x that x 2. The peak is the best fp32 torch.mm of two 2048 x 2048 matrices at
the thread count the rows use (--threads, 0 = torch's default), measured at the start, between
the timed windows and at the end: a shared virtual machine's speed drifts during a run (by 1.7x
on this project's machine), and the shares are of the best it showed. The bandwidth is the best
copy of a 256 MiB float32 tensor (bytes read + written per second).

Training: chargen's own Trainer.train_step (the layers it chooses, fused AdamW, clipping, figures
read every step) on corpora/shakespeare.txt against the plain loop's model and step, written as in
baseline.py (nn.RNN/LSTM/GRU, AdamW, clip, carried state), dropout 0 for both, at the same
shape. The two alternate in windows of steps (--rounds of them), and each reports its best
window: a shared machine's noise hits both alike, and the ratio is what to trust. Sampling:
chargen's Sampler (chunked rounds; one stream on one thread, as `chargen sample` runs it) against
baseline.py's own sampling loop, 1 and B streams (the share of peak is small: a step is a (B, H)
product, bound by reading the weights). The script imports the chargen of the checkout it sits in:
copied into an older checkout (with its baseline.py and _common.py), it gives the "before" rows.

The ceiling: each training row also gives the GFLOP/s (and share of peak) a step would reach if
nothing but its matrix products took any time, each product timed at its own shape
(step_products). The T small recurrent products a step makes forward and backward, (B, H) rows
at a time, run far below the peak at B = 32: no fusion of the element-wise work lifts a step above
that ceiling; a larger batch does.
"""
import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import baseline  # the plain loop, benchmarks/baseline.py, unchanged
import torch
import torch.nn.functional as F
from _common import CORPUS, machine

GATES = {"rnn": 1, "gru": 3, "lstm": 4}
SHAPES = {"default": (2, 256, 64, 32, 64), "reference": (2, 256, 64, 64, 128)}  # L, H, E, B, T
V = 85  # the corpus's vocabulary size, as chargen reads it: main() sets it


PEAKS: list[float] = []  # every sgemm peak measured in this run: the shares are of the best


def forward_macs(cell: str, layers: int, hidden: int, emb: int, vocab: int = V) -> int:
    """Multiply-adds of one character's forward pass (embedding excluded)."""
    ins = [emb] + [hidden] * (layers - 1)
    return sum(GATES[cell] * hidden * (i + hidden) for i in ins) + hidden * vocab


def sgemm_peak(n: int = 2048, repeats: int = 7) -> float:
    """Best fp32 GFLOP/s of torch.mm on two n x n matrices at the current thread count."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = min(_timed(lambda: torch.mm(a, b, out=c)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def bandwidth(mib: int = 256, repeats: int = 5) -> float:
    """Best GB/s of copying a float32 tensor of `mib` MiB (read + write)."""
    src = torch.randn(mib * 2 ** 18)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * src.numel() * 4 / min(_timed(lambda: dst.copy_(src)) for _ in range(repeats)) / 1e9


def _timed(f, n: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


def step_products(cell: str, shape: tuple, vocab: int = V) -> list[tuple[int, tuple[int, int, int]]]:
    """The matrix products of one training step, as (count, (m, k, n)): per layer the input
    projection of every step at once and its two backward products, the T recurrent (B, H) x
    (H, G*H) products forward and T (B, G*H) x (G*H, H) backward (each waits for the one before),
    and the output layer's three. Their multiply-adds are 3 x forward_macs x B x T."""
    layers, hidden, emb, batch, seq = shape
    g, rows, out = GATES[cell] * hidden, batch * seq, []
    for i in [emb] + [hidden] * (layers - 1):
        out += [(1, (rows, i, g)), (1, (rows, g, i)), (1, (g, rows, i)),  # x W_ih, dx, dW_ih
                (seq, (batch, hidden, g)), (seq, (batch, g, hidden)), (1, (g, rows, hidden))]  # h W_hh, dh, dW_hh
    return out + [(1, (rows, hidden, vocab)), (1, (rows, vocab, hidden)), (1, (vocab, rows, hidden))]


def products_ceiling(cell: str, shape: tuple, repeats: int = 3) -> float:
    """GFLOP/s of a training step whose every op but its matrix products took no time: each
    product timed at its own shape (torch.mm, best of `repeats`), at the current thread count.
    The small recurrent products set it: at B = 32 they run far below the sgemm peak."""
    seconds, flops = 0.0, 0.0
    for count, (m, k, n) in step_products(cell, shape):
        a, b, c = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        reps = max(1, int(2e8 // (m * k * n)))  # about 0.2 GFLOP a timing
        torch.mm(a, b, out=c)
        best = min(_timed(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), reps) for _ in range(repeats))
        seconds, flops = seconds + count * best, flops + count * 2 * m * k * n
    return flops / seconds / 1e9


def chargen_step(cell: str, shape: tuple, run_dir: Path):
    """chargen's training step (Trainer.train_step) at this shape; returns (step, chars a step)."""
    from chargen.data import load_corpus
    from chargen.model import ModelConfig
    from chargen.training import TrainConfig
    from chargen.training.trainer import Trainer

    layers, hidden, emb, batch, seq = shape
    corpus = load_corpus(CORPUS, 0.1)
    mc = ModelConfig(vocab_size=len(corpus.vocab), cell=cell, num_layers=layers, hidden_size=hidden,
                     embedding_dim=emb, dropout=0.0)
    tc = TrainConfig(batch_size=batch, seq_len=seq, max_steps=10 ** 6, device="cpu", precision="fp32")
    trainer = Trainer(corpus, mc, tc, run_dir, torch.device("cpu"))
    return trainer.train_step, batch * seq


def plain_step(cell: str, shape: tuple):
    """baseline.py's model and the body of its training loop, at this shape, on random ids."""
    layers, hidden, emb, batch, seq = shape
    a = argparse.Namespace(cell=cell, layers=layers, hidden=hidden, emb=emb, dropout=0.0)
    model = baseline.CharModel(V, a).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0, betas=(0.9, 0.99))
    ids = torch.randint(V, (batch, 4 * seq + 1))
    state, pos = None, [0]

    def step():
        nonlocal state
        i = pos[0] % (3 * seq)
        x, y = ids[:, i:i + seq], ids[:, i + 1:i + seq + 1]
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        state = baseline.cut_graph(state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()  # the plain loop reads its loss when it logs; chargen reads its figures every step
        pos[0] += seq
    return step, batch * seq


def train_rows(cell: str, name: str, shape: tuple, rounds: int, steps: int, peak: float) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        ours, chars = chargen_step(cell, shape, Path(tmp))
        plain, _ = plain_step(cell, shape)
        for f in (ours, plain, ours, plain):  # allocation and first-call set-up: not timed
            f()
        best = {"chargen": float("inf"), "plain": float("inf")}
        ceiling = 0.0
        for _ in range(rounds):
            best["chargen"] = min(best["chargen"], _timed(ours, steps))
            best["plain"] = min(best["plain"], _timed(plain, steps))
            PEAKS.append(sgemm_peak(repeats=2))  # the peak is measured between the windows too
            ceiling = max(ceiling, products_ceiling(cell, shape, repeats=1))  # so is the ceiling: the best round
    flops = 6 * forward_macs(cell, *shape[:3])
    assert sum(c * m * k * n for c, (m, k, n) in step_products(cell, shape)) * 2 == flops * shape[3] * shape[4]
    label = f"{name} {shape[0]}x{shape[1]} E{shape[2]} B{shape[3]} T{shape[4]}"
    return [{"what": "train", "cell": cell, "shape": label,
             "who": who, "chars_per_s": round(chars / s), "GFLOP_per_s": round(chars / s * flops / 1e9, 1),
             "share_of_peak": f"{chars / s * flops / 1e9 / peak:.0%}",
             "vs_plain": round(best["plain"] / s, 2), "products_only_GFLOP_per_s": round(ceiling, 1)}
            for who, s in best.items()]


def sample_rows(cell: str, shape: tuple, length: int, peak: float) -> list[dict]:
    """chargen's Sampler (one stream on one thread, as `chargen sample` runs it) and baseline.py's sampling."""
    from _common import sampling_model

    from chargen.model import CharRNN, ModelConfig
    from chargen.sample import SampleConfig
    from chargen.sample.sampler import Sampler

    layers, hidden, emb, batch, _ = shape
    threads = torch.get_num_threads()
    flops = 2 * forward_macs(cell, layers, hidden, emb, vocab=65)  # baseline.py samples over 65 symbols
    a = argparse.Namespace(mode="sample", cell=cell, layers=layers, hidden=hidden, emb=emb, dropout=0.0,
                           batch=batch, length=length, device="cpu", threads=0, seed=0)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        baseline.sample(a)
    plain = json.loads(out.getvalue().strip().splitlines()[-1])
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=65, cell=cell, num_layers=layers, hidden_size=hidden, embedding_dim=emb))
    _, vocab = sampling_model(cell, layers, hidden)  # 65 symbols, as baseline.py's sampling
    rows = []
    for streams in (1, batch):
        if streams == 1:
            torch.set_num_threads(1)  # as `chargen sample` runs one stream
        sampler = Sampler(model, vocab, SampleConfig(length=length, temperature=0.8, seed=0, num_samples=streams))
        sampler.feed("a")
        for _ in sampler.draw(200, ahead=True):  # warm-up: first chunks allocate
            pass
        t = time.perf_counter()
        for _ in sampler.draw(length, ahead=True):
            pass
        ours = streams * length / (time.perf_counter() - t)
        torch.set_num_threads(threads)
        base = plain[f"chars_per_s_batch{streams}"]
        for who, speed in (("chargen", ours), ("plain", base)):
            rows.append({"what": f"sample x{streams}", "cell": cell, "shape": f"{layers}x{hidden} E{emb}", "who": who,
                         "chars_per_s": round(speed), "GFLOP_per_s": round(speed * flops / 1e9, 2),
                         "share_of_peak": f"{speed * flops / 1e9 / peak:.1%}", "vs_plain": round(speed / base, 2)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for every row (0: torch's default)")
    p.add_argument("--cells", default="gru,lstm,rnn")
    p.add_argument("--shapes", default="default,reference")
    p.add_argument("--rounds", type=int, default=10, help="alternating timed windows per pair")
    p.add_argument("--steps", type=int, default=4, help="training steps per window")
    p.add_argument("--length", type=int, default=1000, help="sampled characters per stream")
    p.add_argument("--no-sample", action="store_true")
    a = p.parse_args()
    global V
    from chargen.data import load_corpus
    V = len(load_corpus(CORPUS, 0.1).vocab)  # both loops predict over the same characters
    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    peak, bw = sgemm_peak(), bandwidth()
    print(f"machine: {machine()}; {os.cpu_count()} CPUs, {threads} threads; date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"sgemm peak (fp32 torch.mm 2048^3, {threads} threads): {peak:.1f} GFLOP/s; copy bandwidth: {bw:.1f} GB/s")
    rows = []
    for cell in a.cells.split(","):
        for name in a.shapes.split(","):
            rows += train_rows(cell, name, SHAPES[name], a.rounds, a.steps, peak)
            print(json.dumps(rows[-2]), json.dumps(rows[-1]), flush=True)
        if not a.no_sample:
            rows += sample_rows(cell, SHAPES["default"], a.length, peak)
    peak_after = sgemm_peak()  # the machine may have changed under the run: say so
    print(f"sgemm peak again at the end: {peak_after:.1f} GFLOP/s")
    best = max([peak, peak_after, *PEAKS])  # a machine whose speed drifts: the shares are of its best
    print(f"sgemm peak, best of the {len(PEAKS) + 2} measured in this run: {best:.1f} GFLOP/s "
          f"(lowest {min([peak, peak_after, *PEAKS]):.1f}); the shares below are of the best")
    for r in rows:
        r["share_of_peak"] = f"{r['GFLOP_per_s'] / best:.1%}"
        if "products_only_GFLOP_per_s" in r:  # the most a step could reach with its products as fast as measured
            r["ceiling_share"] = f"{r['products_only_GFLOP_per_s'] / best:.1%}"
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")


if __name__ == "__main__":
    main()
