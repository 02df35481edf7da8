#!/usr/bin/env python3
"""Eager against torch.compile'd: one training step (forward, loss, backward; clipping and AdamW
outside the compiled part) of a chargen model at the default shape (2x256, batch 32 x 64), on
random ids, in alternating windows of 4 steps; prints the compile time (the first call) and the
median step of each.

    python benchmarks/compile_probe.py CELL LAYERS     # e.g. gru fused_gru, rnn fused_rnn, gru reference
"""
import statistics
import sys
import time

import _common  # noqa: F401 - puts this checkout's chargen on the path
import torch
import torch.nn.functional as F

from chargen.model import CharRNN, ModelConfig

V, B, T = 85, 32, 64


def make(cell: str, impl: str):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=V, cell=cell, num_layers=2, hidden_size=256, embedding_dim=64, dropout=0.0)
    model = CharRNN(config, impl).train()
    return model, torch.optim.AdamW(model.parameters(), lr=3e-3)


def body(model, x, y):
    logits, _ = model(x, None)
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    loss.backward()
    return loss.detach()


def run(model, opt, f, ids, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f(model, ids[:, :T], ids[:, 1:])
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    cell, impl = sys.argv[1], sys.argv[2]
    ids = torch.randint(V, (B, T + 1))
    eager, compiled = make(cell, impl), make(cell, impl)
    compiled_body = torch.compile(body)
    t = time.perf_counter()
    run(*compiled, compiled_body, ids, 1)
    compile_s = time.perf_counter() - t
    run(*eager, body, ids, 3)
    run(*compiled, compiled_body, ids, 3)
    e, c = [], []
    for _ in range(8):
        e += run(*eager, body, ids, 4)
        c += run(*compiled, compiled_body, ids, 4)
    me, mc = statistics.median(e), statistics.median(c)
    print(f"{cell} {impl}: compile {compile_s:.1f} s; eager {me * 1e3:.1f} ms, compiled {mc * 1e3:.1f} ms a step; "
          f"eager/compiled {me / mc:.3f}")


if __name__ == "__main__":
    main()
