#!/usr/bin/env python3
"""Training-step variants on a GPU, one process: which changes make an LSTM train faster.

    python benchmarks/gpu_probe.py [--seconds 4] [--quick] [--cell lstm --layers 3 --hidden 512 --batch 128 --seq 128]

Each variant trains the same model shape on tinyshakespeare windows for a few seconds
after a warm-up and prints characters/s (JSON lines, then a table). The variants:
precision (fp32, bf16 autocast, fp16 autocast with loss scaling, weights held in half),
the layers as one stacked cuDNN call or one call per layer (cuDNN picks its persistent
kernels only for single-layer calls), a host synchronisation every step or none, and
the foreach or fused AdamW. It is a measuring tool for benchmarks/README.md, not part
of chargen: the winners live in chargen/model.py and chargen/trainer.py.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import TINY, machine


class Net(nn.Module):
    def __init__(self, vocab: int, a, split: bool, emb: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[a.cell]
        if split:
            sizes = [emb] + [a.hidden] * a.layers
            self.rnns = nn.ModuleList(cls(sizes[k], a.hidden, 1, batch_first=True) for k in range(a.layers))
        else:
            self.rnns = nn.ModuleList([cls(emb, a.hidden, a.layers, batch_first=True)])
        self.head = nn.Linear(a.hidden, vocab)

    def forward(self, x, hs):
        y, out = self.emb(x), []
        for rnn, h in zip(self.rnns, hs):
            y, h = rnn(y, h)
            out.append(h)
        return self.head(y), out


def detach(hs):
    return [None if h is None else (tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()) for h in hs]


def run_variant(ids: torch.Tensor, vocab: int, a, *, amp: str, split: bool, emb: int, sync: bool,
                fused: bool, half_weights: bool = False) -> dict:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    net = Net(vocab, a, split, emb).to(dev)
    if half_weights:
        net = net.half()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, betas=(0.9, 0.99), weight_decay=0.01,
                            fused=fused, foreach=None if fused else True)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda", enabled=(amp == "fp16"))
    B, T = a.batch, a.seq
    L = ids.numel() // B
    streams = ids[: L * B].view(B, L)
    nwin = (L - 1) // T
    hs = [None] * len(net.rnns)
    steps, t0, w = 0, None, 0
    while True:
        if steps == 10:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        if t0 is not None and time.perf_counter() - t0 > a.seconds:
            break
        if w >= nwin:
            w, hs = 0, [None] * len(net.rnns)
        x, y = streams[:, w * T:(w + 1) * T], streams[:, w * T + 1:(w + 1) * T + 1]
        w += 1
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits, hs = net(x, hs)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        hs = detach(hs)
        if sync:
            loss.item(), norm.item()
        steps += 1
    torch.cuda.synchronize()
    spent = time.perf_counter() - t0
    n = steps - 10
    return {"amp": amp, "split": split, "emb": emb, "sync": sync, "fused": fused, "half_weights": half_weights,
            "steps": n, "ms_per_step": round(1000 * spent / n, 2), "chars_per_s": round(n * B * T / spent),
            "final_loss": round(loss.item(), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--quick", action="store_true", help="only fp32, bf16 and fp16 stacked, and fp16 per layer")
    a = p.parse_args()
    print(f"machine: {machine()}; cudnn {torch.backends.cudnn.version()}", flush=True)
    text = TINY.read_text(encoding="utf-8")
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([lookup[c] for c in text[: int(0.9 * len(text))]], device="cuda")
    variants = [
        dict(amp="bf16", split=False, emb=64, sync=False, fused=False),  # the reference's loop, nearly
        dict(amp="none", split=False, emb=64, sync=True, fused=True),
        dict(amp="bf16", split=False, emb=64, sync=True, fused=True),
        dict(amp="fp16", split=False, emb=64, sync=True, fused=True),
        dict(amp="fp16", split=False, emb=64, sync=False, fused=True),
        dict(amp="fp16", split=True, emb=64, sync=False, fused=True),
        dict(amp="fp16", split=True, emb=128, sync=False, fused=True),
        dict(amp="bf16", split=True, emb=128, sync=False, fused=True),
        dict(amp="none", split=True, emb=128, sync=False, fused=True),
        dict(amp="none", split=False, emb=64, sync=False, fused=True, half_weights=True),
        dict(amp="none", split=True, emb=128, sync=False, fused=True, half_weights=True),
    ]
    if a.quick:
        variants = [variants[1], variants[2], variants[4], variants[5]]
    rows = []
    for v in variants:
        try:
            row = run_variant(ids, len(chars), a, **v)
        except Exception as e:  # a variant cuDNN refuses must not hide the others
            row = {**v, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| amp | split | emb | sync | fused | half | ms/step | chars/s |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['amp']} | {r['split']} | {r['emb']} | {r['sync']} | {r['fused']} | {r.get('half_weights')} "
              f"| {r.get('ms_per_step', r.get('error'))} | {r.get('chars_per_s', '')} |")


if __name__ == "__main__":
    main()
