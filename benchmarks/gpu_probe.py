#!/usr/bin/env python3
"""Training-step variants on a GPU, one process: which changes make an LSTM train faster.

    python benchmarks/gpu_probe.py [--seconds 4] [--quick] [--cell lstm --layers 3 --hidden 512 --batch 128 --seq 128]

Each variant trains the same model shape on windows of corpora/shakespeare.txt (or --corpus) for a few seconds
after a warm-up and prints characters/s (JSON lines, then a table). The variants:
precision (fp32, bf16 autocast, fp16 autocast with loss scaling, weights held in half),
the layers as one stacked cuDNN call or one call per layer (cuDNN picks its persistent
kernels only for single-layer calls), a host synchronisation every step or none, and
the foreach or fused AdamW. It is a measuring tool for benchmarks/README.md, not part
of chargen: the winners live in chargen/model/layers.py and chargen/training/trainer.py.

Two variants train chargen's own CharRNN instead of this script's Net, built with its
layers chosen explicitly: CharRNN(cfg, "torch") (one stacked cuDNN call) and
CharRNN(cfg, "per_layer") (one cuDNN call per layer: what `choose_layers` picks for a
stacked LSTM on CUDA). Both start from the same seed, so from the same weights; before
timing them the script prints how far apart their logits and loss gradients are on one
batch (`chargen_layers_check`: they compute the same function, up to rounding).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from _common import add_source_args, machine
from torch import nn

from chargen.model import CharRNN, ModelConfig


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
        self.states = len(self.rnns)

    def forward(self, x, hs):
        y, out = self.emb(x), []
        for rnn, h in zip(self.rnns, hs):
            y, h = rnn(y, h)
            out.append(h)
        return self.head(y), out


class ChargenNet(nn.Module):
    """chargen's CharRNN with its layers run the way `layers` names, in Net's interface (a list of states)."""

    def __init__(self, vocab: int, a, layers: str, emb: int) -> None:
        super().__init__()
        cfg = ModelConfig(vocab_size=vocab, cell=a.cell, num_layers=a.layers, hidden_size=a.hidden,
                          embedding_dim=emb, dropout=0.0)
        self.model = CharRNN(cfg, layers)
        self.states = 1

    def forward(self, x, hs):
        logits, h = self.model(x, hs[0])
        return logits, [h]


def detach(hs):
    return [None if h is None else (tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()) for h in hs]


def run_variant(ids: torch.Tensor, vocab: int, a, *, amp: str, split: bool, emb: int, sync: bool,
                fused: bool, half_weights: bool = False, chargen: str | None = None) -> dict:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    net = (Net(vocab, a, split, emb) if chargen is None else ChargenNet(vocab, a, chargen, emb)).to(dev)
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
    hs = [None] * net.states
    steps, t0, w = 0, None, 0
    while True:
        if steps == 10:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        if t0 is not None and time.perf_counter() - t0 > a.seconds:
            break
        if w >= nwin:
            w, hs = 0, [None] * net.states
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
            "chargen": chargen, "steps": n, "ms_per_step": round(1000 * spent / n, 2),
            "chars_per_s": round(n * B * T / spent),
            "final_loss": round(loss.item(), 3)}


def chargen_layers_check(ids: torch.Tensor, vocab: int, a, emb: int = 64) -> dict:
    """CharRNN(cfg, "torch") and CharRNN(cfg, "per_layer") from the same seed (so the same weights),
    in fp32 on one batch of `ids`' device: the largest absolute differences of their logits and of
    their parameters' gradients (the per-layer calls write theirs into the stacked module's
    parameters, so the names match), and the largest logit for scale."""
    x = ids[: a.batch * (a.seq + 1)].view(a.batch, a.seq + 1)  # (B, T + 1)
    out = {}
    for layers in ("torch", "per_layer"):
        torch.manual_seed(0)
        net = ChargenNet(vocab, a, layers, emb).to(ids.device).train()
        logits, _ = net(x[:, :-1], [None])  # (B, T, V)
        F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()).backward()
        out[layers] = logits.detach(), {name: t.grad for name, t in net.named_parameters()}
    (logits0, grads0), (logits1, grads1) = out["torch"], out["per_layer"]
    return {"check": "chargen_layers", "max_abs_logit": round(logits0.abs().max().item(), 3),
            "max_logit_diff": (logits0 - logits1).abs().max().item(),
            "max_grad_diff": max((grads0[n] - grads1[n]).abs().max().item() for n in grads0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--quick", action="store_true",
                   help="only fp32, bf16 and fp16 stacked, fp16 per layer, and chargen's CharRNN both ways")
    add_source_args(p, reference=False)
    a = p.parse_args()
    print(f"machine: {machine()}; cudnn {torch.backends.cudnn.version()}", flush=True)
    text = a.corpus.read_text(encoding="utf-8")
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
        # chargen's own model, its layers chosen explicitly; fp16 as chargen's CUDA recipe trains:
        dict(amp="fp16", split=False, emb=64, sync=False, fused=True, chargen="torch"),
        dict(amp="fp16", split=True, emb=64, sync=False, fused=True, chargen="per_layer"),
    ]
    if a.quick:
        variants = [variants[1], variants[2], variants[4], variants[5], variants[11], variants[12]]
    try:
        check = chargen_layers_check(ids, len(chars), a)
    except Exception as e:  # per_layer runs LSTMs only: --cell gru gets an error row, not a stop
        check = {"check": "chargen_layers", "error": f"{type(e).__name__}: {str(e)[:200]}"}
    print(json.dumps(check), flush=True)
    rows = []
    for v in variants:
        try:
            row = run_variant(ids, len(chars), a, **v)
        except Exception as e:  # a variant cuDNN refuses must not hide the others
            row = {**v, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| model | amp | split | emb | sync | fused | half | ms/step | chars/s |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        model = "Net" if r.get("chargen") is None else f"CharRNN {r['chargen']}"
        print(f"| {model} | {r['amp']} | {r['split']} | {r['emb']} | {r['sync']} | {r['fused']} "
              f"| {r.get('half_weights')} | {r.get('ms_per_step', r.get('error'))} | {r.get('chars_per_s', '')} |")


if __name__ == "__main__":
    main()
