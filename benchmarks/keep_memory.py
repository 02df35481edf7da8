#!/usr/bin/env python3
"""What keeping freed memory (chargen/memory.py, which the Trainer turns on) is worth: training
steps at the default CPU shape in fresh processes, with and without it, alternating.

    python benchmarks/keep_memory.py [--cells gru,lstm,rnn] [--steps 100] [--repeats 5]

Each child process builds the model with the layers `chargen train` uses on a CPU, runs a few
warm-up steps (forward, loss, backward, clip, fused AdamW) on random ids, then times --steps of
them and counts the minor page faults they cause. The two kinds of child alternate (as is, kept;
then kept, as is), and `paired` is the median over repeats of as-is time over kept time of the
same repeat: a drift in the machine's speed falls on both alike. glibc systems only (Linux).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from _common import machine, report


def child(cell: str, steps: int, keep: bool) -> None:
    import torch
    import torch.nn.functional as F

    from chargen.memory import keep_freed_memory
    from chargen.model import CharRNN, ModelConfig, choose_layers

    if keep:
        assert keep_freed_memory(), "glibc's malloc did not take the setting"
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=85, cell=cell, num_layers=2, hidden_size=256, embedding_dim=64, dropout=0.0)
    model = CharRNN(config, choose_layers(cell, 2, "cpu", training=True)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), fused=True)
    x, y = torch.randint(85, (32, 64)), torch.randint(85, (32 * 64,))

    def step():
        opt.zero_grad(set_to_none=True)
        logits, _ = model(x)
        F.cross_entropy(logits.flatten(0, 1), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    for _ in range(5):
        step()
    faults, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t
    print(json.dumps({"ms_per_step": seconds / steps * 1e3,
                      "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps}))


def run(cell: str, steps: int, keep: bool) -> dict:
    args = [sys.executable, __file__, "--child", cell, "--steps", str(steps)] + (["--keep"] if keep else [])
    return json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", default="gru,lstm,rnn")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child, a.steps, a.keep)
    print(f"machine: {machine()}; date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    rows = []
    for cell in a.cells.split(","):
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for i in range(a.repeats):
            for keep in ((False, True) if i % 2 == 0 else (True, False)):
                runs[keep].append(run(cell, a.steps, keep))
        ms = {k: [r["ms_per_step"] for r in v] for k, v in runs.items()}
        pairs = sorted(old / new for old, new in zip(ms[False], ms[True]))
        rows.append({"cell": cell, "as_is_ms_per_step": round(statistics.median(ms[False]), 2),
                     "kept_ms_per_step": round(statistics.median(ms[True]), 2),
                     "paired_as_is/kept": round(statistics.median(pairs), 3),
                     "pairs": " ".join(f"{r:.3f}" for r in pairs),
                     "faults_per_step_as_is": round(statistics.median(r["faults_per_step"] for r in runs[False])),
                     "faults_per_step_kept": round(statistics.median(r["faults_per_step"] for r in runs[True]))})
        print(json.dumps(rows[-1]), flush=True)
    report(rows)


if __name__ == "__main__":
    main()
