#!/usr/bin/env python3
"""Does chargen's LSTM initialisation (forget-gate bias 1, other biases 0) slow the first minutes
of training? The same CharRNN LSTM 2x256 from the same seed, once as chargen makes it and once with
torch's default bias initialisation (uniform +-1/sqrt(H)), each trained 400 steps with a constant
AdamW lr 3e-3 (no schedule, no weight decay, clip 1.0) on the first 2 M training characters of
corpora/shakespeare.txt at batch 32 x 64, state carried; prints the mean training loss over steps
100-200 and 300-400 of each.

    python benchmarks/lstm_init_probe.py chargen-init torch-init
"""
import math
import sys
import time

import torch
import torch.nn.functional as F
from _common import CORPUS

from chargen.data import load_corpus
from chargen.model import CharRNN, ModelConfig

B, T, STEPS = 32, 64, 400


def make(variant: str, vocab: int) -> CharRNN:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=vocab, cell="lstm", num_layers=2, hidden_size=256, embedding_dim=64,
                                dropout=0.0))
    if variant == "torch-init":
        bound = 1 / math.sqrt(256)
        for name, p in model.rnn.named_parameters():
            if name.startswith("bias"):
                torch.nn.init.uniform_(p, -bound, bound)
    return model


def main() -> None:
    corpus = load_corpus(CORPUS, 0.1)
    ids = torch.as_tensor(corpus.train_ids[:2_000_000].astype("int64"))
    vocab = len(corpus.vocab)
    streams = ids[: (len(ids) // B) * B].view(B, -1)  # (B, N)
    for variant in sys.argv[1:] or ["chargen-init", "torch-init"]:
        model = make(variant, vocab)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0, betas=(0.9, 0.99))
        hidden, losses, t = None, [], time.perf_counter()
        for step in range(STEPS):
            x, y = streams[:, step * T: (step + 1) * T], streams[:, step * T + 1: (step + 1) * T + 1]
            logits, hidden = model(x, hidden)
            hidden = tuple(h.detach() for h in hidden)
            loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        print(f"{variant}: mean loss steps 100-200 {sum(losses[100:200]) / 100:.4f}, "
              f"300-400 {sum(losses[300:]) / 100:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
