#!/usr/bin/env python3
"""The yardstick: a plain character-level RNN training loop, as a careful PyTorch user would write it.

chargen's speed and quality figures are ratios against this script, run on the same machine, in the
same benchmark run, at the same shape. It stays deliberately ordinary so that the ratio measures what
chargen adds: torch.nn's own RNN/LSTM/GRU, an embedding and a linear head, AdamW, truncated
backpropagation through time with the hidden state carried between batches, gradient-norm clipping,
autocast on CUDA, and a Python loop that samples one character per call. Nothing from chargen is
imported. Please keep it that way: a faster baseline is a different yardstick.

Split: the first 90% of the characters train, the last 10% validate. Two validation losses, in nats
per character: `val_stream` reads the whole validation text as 16 parallel streams with the state
carried (an RNN's own loss), `val_win256` averages random 256-character windows that each start from a
zero state (the way nanoGPT reports its loss).

    python benchmarks/baseline.py train --corpus corpora/shakespeare.txt --cell gru --seconds 30
    python benchmarks/baseline.py sample --cell lstm --layers 3 --hidden 512 --length 2000

Both print JSON lines; the last line is the summary (`train_chars_per_s`, `best_val_stream`, ... or
`chars_per_s_batch1`, `chars_per_s_batch<B>`).
"""
import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class CharModel(nn.Module):
    def __init__(self, vocab_size: int, a: argparse.Namespace):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, a.emb)
        self.rnn = CELLS[a.cell](a.emb, a.hidden, num_layers=a.layers, batch_first=True,
                                 dropout=a.dropout if a.layers > 1 else 0.0)
        self.head = nn.Linear(a.hidden, vocab_size)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embed(ids), state)
        return self.head(out), state


def cut_graph(state):
    """The carried state without its history: truncated backpropagation through time."""
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def setup(a: argparse.Namespace) -> torch.device:
    device = torch.device(a.device)
    if device.type == "cpu" and a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    return device


def autocast(device: torch.device, amp: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    if device.type != "cuda" or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


@torch.no_grad()
def loss_streams(model, val, vocab_size, device, amp, streams=16, chunk=512):
    length = val.numel() // streams
    rows = val[: length * streams].view(streams, length)
    state, total = None, 0.0
    for i in range(0, length - 1, chunk):
        j = min(i + chunk, length - 1)
        with autocast(device, amp):
            logits, state = model(rows[:, i:j], state)
        total += F.cross_entropy(logits.float().reshape(-1, vocab_size), rows[:, i + 1:j + 1].reshape(-1),
                                 reduction="sum").item()
    return total / ((length - 1) * streams)


@torch.no_grad()
def loss_windows(model, val, vocab_size, device, amp, rounds=4, windows=64, width=256):
    gen = torch.Generator().manual_seed(1)
    total = 0.0
    for _ in range(rounds):
        starts = torch.randint(val.numel() - width - 1, (windows,), generator=gen).tolist()
        x = torch.stack([val[s:s + width] for s in starts])
        y = torch.stack([val[s + 1:s + width + 1] for s in starts])
        with autocast(device, amp):
            logits, _ = model(x)
        total += F.cross_entropy(logits.float().reshape(-1, vocab_size), y.reshape(-1)).item()
    return total / rounds


def train(a: argparse.Namespace) -> None:
    device = setup(a)
    text = Path(a.corpus).read_text(encoding="utf-8")
    alphabet = sorted(set(text))
    index = {c: i for i, c in enumerate(alphabet)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    train_ids, val = ids[:cut].to(device), ids[cut:].to(device)
    vocab_size = len(alphabet)
    model = CharModel(vocab_size, a).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd, betas=(0.9, 0.99))

    # Batch row r reads the r-th of B equal slices of the training text, so the state carried from one
    # batch to the next belongs to the text that follows.
    B, T = a.batch, a.seq
    per_row = (train_ids.numel() - 1) // B
    rows = train_ids[: per_row * B + 1]
    xs, ys = rows[:-1][: per_row * B].view(B, per_row), rows[1:][: per_row * B].view(B, per_row)
    state, pos, step, spent, next_eval = None, 0, 0, 0.0, a.eval_every
    best_stream = best_win = float("inf")
    started = time.time()
    model.train()
    while True:
        t0 = time.time()
        if pos + T > per_row:
            pos, state = 0, None
        x, y = xs[:, pos:pos + T], ys[:, pos:pos + T]
        pos += T
        with autocast(device, a.amp):
            logits, state = model(x, state)
            loss = F.cross_entropy(logits.float().reshape(-1, vocab_size), y.reshape(-1))
        state = cut_graph(state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        step += 1
        if device.type == "cuda" and step % 50 == 0:
            torch.cuda.synchronize()  # keep the clock honest: CUDA work is asynchronous
        spent += time.time() - t0
        if spent >= next_eval or spent >= a.seconds:
            if device.type == "cuda":
                torch.cuda.synchronize()
            model.eval()
            vs = loss_streams(model, val, vocab_size, device, a.amp)
            vw = loss_windows(model, val, vocab_size, device, a.amp)
            model.train()
            best_stream, best_win = min(best_stream, vs), min(best_win, vw)
            print(json.dumps({"train_s": round(spent, 1), "step": step, "train_loss": round(loss.item(), 4),
                              "val_stream": round(vs, 4), "val_win256": round(vw, 4),
                              "chars_per_s": round(step * B * T / spent)}), flush=True)
            next_eval += a.eval_every
            if spent >= a.seconds:
                break
    print(json.dumps({"summary": "baseline-train", "params": sum(p.numel() for p in model.parameters()),
                      "best_val_stream": round(best_stream, 4), "best_val_win256": round(best_win, 4),
                      "steps": step, "train_chars_per_s": round(step * B * T / spent),
                      "wall_s": round(time.time() - started, 1), "config": vars(a)}), flush=True)


@torch.no_grad()
def sample(a: argparse.Namespace) -> None:
    device = setup(a)
    model = CharModel(65, a).to(device).eval()  # speed does not depend on the weights or the vocabulary
    result = {}
    for batch in (1, a.batch):
        ids = torch.zeros(batch, 1, dtype=torch.long, device=device)
        state, warmup = None, 20
        for i in range(a.length + warmup):
            if i == warmup:  # the first calls allocate and choose kernels: not timed
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.time()
            logits, state = model(ids, state)
            ids = torch.multinomial(torch.softmax(logits[:, -1].float() / 0.8, dim=-1), 1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        result[f"chars_per_s_batch{batch}"] = round(batch * a.length / (time.time() - t0))
    print(json.dumps({"summary": "baseline-sample", "device": str(device), **result, "config": vars(a)}),
          flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["train", "sample"])
    p.add_argument("--corpus", default=str(ROOT / "corpora" / "shakespeare.txt"))
    p.add_argument("--cell", default="gru", choices=sorted(CELLS))
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--emb", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--wd", type=float, default=0.0)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=60.0, help="seconds of training (evaluation not counted)")
    p.add_argument("--eval-every", dest="eval_every", type=float, default=15.0,
                   help="seconds of training between evaluations")
    p.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "none"], help="autocast dtype on CUDA")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--length", type=int, default=2000, help="sample: characters per stream")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    train(a) if a.mode == "train" else sample(a)


if __name__ == "__main__":
    main()
