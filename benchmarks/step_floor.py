#!/usr/bin/env python3
"""Where a CPU training step's time goes, piece by piece, and the share of the machine's peak the
step could reach if nothing but those pieces took any time.

    python benchmarks/step_floor.py [--cells rnn,gru] [--rounds 8] [--threads 0]

For the fused RNN and GRU that `chargen train` runs on a CPU, at the default shape (2 layers x 256,
embedding 64, batch 32 x 64), each piece of a training step is timed on its own with chargen's own
functions, at its own shapes, on made-up values:
- per layer: the input products of every step at once (forward); the recurrence forward (the
  T per-step products and the cell's element-wise work between them, `_forward_in_time`); the
  backward's all-steps factors; the recurrence backward (`_backward_in_time`); the weight and
  input gradients (three products) and the bias sums;
- the embedding forward and backward; the head, the loss and their backward (through autograd);
- the optimizer: gradient clipping, the fused AdamW step, zero_grad.
The whole step is chargen's Trainer.train_step on corpora/shakespeare.txt (roofline.py's). Every
piece and the whole step alternate in rounds, each keeps its best, and the sgemm peak is measured
between the rounds: the shares are of the best peak of the run.

The floor is the sum of the pieces' best times: what the step would take with no autograd, no
allocation and no Python between the pieces. If even the floor stays below a share of the peak,
that share is out of reach with these operations; the table says which piece holds it there.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import roofline
import torch
import torch.nn.functional as F
from _common import CORPUS, machine

from chargen.model import fused_gru, fused_rnn

SHAPE = roofline.SHAPES["default"]  # L, H, E, B, T


def layer_pieces(cell: str, n_in: int, hidden: int, batch: int, seq: int) -> dict:
    """One layer's pieces of a fused training step, as name -> a function that runs it once."""
    T, B, H, rows = seq, batch, hidden, batch * seq
    g = roofline.GATES[cell] * H
    x, w_ih = torch.randn(rows, n_in), torch.randn(g, n_in) * 0.01
    w_hh, b = torch.randn(g, H) * 0.01, torch.randn(g) * 0.01
    w_hh_t = w_hh.t().contiguous()
    hs = torch.rand(T + 1, B, H) - 0.5  # (T+1, B, H): states, as the forward leaves them
    d_out, d_rows = torch.randn(T, B, H), torch.randn(rows, g)
    pre = torch.addmm(b, x, w_ih.t()).view(T, B, g)  # (T, B, G): the buffer the recurrence uses up
    pieces = {"input products": lambda: torch.addmm(b, x, w_ih.t())}
    if cell == "rnn":
        k = torch.rand(T, B, H)
        pieces |= {"recurrence forward": lambda: fused_rnn._forward_in_time(pre, hs, w_hh_t),
                   "backward factors": lambda: torch.addcmul(hs.new_ones(()), hs[1:], hs[1:], value=-1),
                   "recurrence backward": lambda: fused_rnn._backward_in_time(d_out, k, w_hh)}
    else:
        hn = torch.empty(T, B, H)
        gates = pre.sigmoid()  # r, z, n as the forward leaves them
        k_h = torch.rand(T, B, g)
        pieces |= {"recurrence forward": lambda: fused_gru._forward_in_time(pre, hs, hn, w_hh_t, b[2 * H:]),
                   "backward factors": lambda: fused_gru._gate_factors(hs[:-1], gates, hn),
                   "recurrence backward": lambda: fused_gru._backward_in_time(d_out, k_h, gates[..., H:2 * H],
                                                                             w_hh)}
    h_rows = hs[:-1].reshape(rows, H)
    pieces["weight and input gradients"] = lambda: (d_rows.t().mm(h_rows), d_rows.t().mm(x), d_rows.mm(w_ih),
                                                    d_rows.sum(0))
    return pieces


def model_pieces(cell: str, vocab: int) -> dict:
    """The pieces outside the recurrent layers: embedding, head and loss, optimizer."""
    from chargen.model import CharRNN, ModelConfig
    L, H, E, B, T = SHAPE
    model = CharRNN(ModelConfig(vocab_size=vocab, cell=cell, num_layers=L, hidden_size=H, embedding_dim=E,
                                dropout=0.0))
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), fused=True)
    ids, targets = torch.randint(vocab, (B, T)), torch.randint(vocab, (B * T,))
    out = torch.randn(B, T, H, requires_grad=True)

    def embedding():
        model.embedding(ids).backward(torch.ones(B, T, E))

    def head_and_loss():
        F.cross_entropy(model.head(out).flatten(0, 1), targets).backward()

    def optimizer():
        for p in params:
            p.grad = torch.full_like(p, 1e-3)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    grads_only = lambda: [setattr(p, "grad", torch.full_like(p, 1e-3)) for p in params]  # noqa: E731
    return {"embedding": embedding, "head and loss": head_and_loss, "optimizer": optimizer,
            "_optimizer's made-up gradients": grads_only}


def measure(cell: str, rounds: int, reps: int, peak_log: list[float]) -> tuple[dict, float]:
    L, H, E, B, T = SHAPE
    pieces = {}
    for layer in range(L):
        for name, f in layer_pieces(cell, E if layer == 0 else H, H, B, T).items():
            pieces[f"layer {layer + 1}: {name}"] = f
    pieces |= model_pieces(cell, roofline.V)
    with tempfile.TemporaryDirectory() as tmp:
        step, _ = roofline.chargen_step(cell, SHAPE, Path(tmp))
        best = {name: float("inf") for name in ["whole step", *pieces]}
        for f in [step, *pieces.values()]:  # first calls allocate: not timed
            f(), f()
        for _ in range(rounds):
            best["whole step"] = min(best["whole step"], roofline._timed(step, reps))
            for name, f in pieces.items():
                best[name] = min(best[name], roofline._timed(f, reps))
            peak_log.append(roofline.sgemm_peak(repeats=2))
    made_up = best.pop("_optimizer's made-up gradients")
    best["optimizer"] = max(0.0, best["optimizer"] - made_up)  # the optimizer alone, not the filling of .grad
    return best, best.pop("whole step")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default="rnn,gru")
    p.add_argument("--rounds", type=int, default=8, help="alternating rounds; each piece keeps its best")
    p.add_argument("--reps", type=int, default=4, help="calls of each piece per timed window")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    a = p.parse_args()
    from chargen.data import load_corpus
    roofline.V = len(load_corpus(CORPUS, 0.1).vocab)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"machine: {machine()}; {torch.get_num_threads()} threads; date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    L, H, E, B, T = SHAPE
    peaks = [roofline.sgemm_peak()]
    results = {cell: measure(cell, a.rounds, a.reps, peaks) for cell in a.cells.split(",")}
    peak = max(peaks)
    print(f"sgemm peak, best of {len(peaks)} in this run: {peak:.1f} GFLOP/s (lowest {min(peaks):.1f})")
    for cell, (pieces, step) in results.items():
        flops = 6 * roofline.forward_macs(cell, L, H, E) * B * T  # of one step
        floor = sum(pieces.values())
        loops = sum(s for n, s in pieces.items() if "recurrence" in n)
        print(f"\n{cell}, {L}x{H} E{E} B{B} T{T}: {flops / 1e9:.2f} GFLOP a step")
        print("| piece | best ms | share of the floor |")
        print("|---|---|---|")
        for name, s in pieces.items():
            print(f"| {name} | {s * 1e3:.2f} | {s / floor:.0%} |")
        print(f"| **floor: the pieces' sum** | {floor * 1e3:.2f} | 100% |")
        print(f"| **chargen's whole step** | {step * 1e3:.2f} | {step / floor:.0%} |")
        share = lambda s, flops=flops: f"{flops / s / 1e9 / peak:.1%}"  # noqa: E731
        # The recurrences' products: T per layer forward and T backward, (B, H) x (H, G*H) or the reverse.
        recurrent_flops = 2 * L * T * 2 * B * H * roofline.GATES[cell] * H
        at_peak = floor - loops + recurrent_flops / peak / 1e9
        print(f"share of the peak: chargen's step {share(step)}; at the floor {share(floor)}; "
              f"at the floor with the recurrences' products at the sgemm peak and their element-wise "
              f"work free {share(at_peak)}")
        print(f"the recurrences: {loops * 1e3:.2f} ms of the floor ({loops / floor:.0%}), their products at "
              f"{recurrent_flops / loops / 1e9:.1f} GFLOP/s with the element-wise work between them")


if __name__ == "__main__":
    main()
