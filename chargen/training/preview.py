"""The short sample a run draws at each evaluation, so that a person can watch it learn.

It reads the training model as it stands and leaves everything of the run as it was: the
global RNG, the carried state, dropout's mode, the device. Sampling proper (primes, top-k,
speed) is chargen.sample's; this is the plain loop, one model call per character.
"""
from __future__ import annotations

import torch

from ..data import RECORD_END, Vocab
from ..model.charrnn import CharRNN, zero_where
from .evaluate import eval_mode

# Below 1 the draw leans to the likelier characters: an early model's sample shows the words and
# line shapes it has learned rather than its noise, and 0.8 still leaves it room not to loop.
SAMPLE_TEMPERATURE = 0.8


@torch.no_grad()
def draw_sample(model: CharRNN, vocab: Vocab, device: torch.device, length: int, seed: int,
                temperature: float = SAMPLE_TEMPERATURE, records: bool = False) -> str:
    """`length` characters drawn from `model` after a newline (the first character without one),
    from a zero state, in eval mode, at `temperature` (> 0). With `records` (a model trained on
    records) each record starts from a zero state on the end-of-record symbol, as in training,
    and the records are shown one per line.

    The draws come from a generator of their own, seeded with `seed`, so the same weights
    give the same text and the run's random numbers are untouched; the unknown symbol is
    never drawn. The model's weights stay where and as they are (no copy, no cast).
    """
    gen = torch.Generator(device).manual_seed(seed)
    end = vocab.chars.index(RECORD_END) if records and RECORD_END in vocab.chars else None
    start = end if end is not None else vocab.chars.index("\n") if "\n" in vocab.chars else 0
    x = torch.full((1, 1), start, dtype=torch.long, device=device)  # (B=1, T=1)
    ids = torch.empty(length, dtype=torch.long, device=device)  # (N,): read to the host once, at the end
    hidden = None
    with eval_mode(model):
        for i in range(length):
            logits, hidden = model(x, hidden)  # (1, 1, V)
            scores = logits[0, -1].float() / temperature  # (V,)
            if vocab.unk_id is not None:
                scores[vocab.unk_id] = -torch.inf
            # argmax(scores + Gumbel noise) is a draw from softmax(scores); unlike multinomial it never
            # raises, so a model whose logits went non-finite still gets through its evaluation.
            noise = -torch.log(-torch.log(torch.rand(scores.shape, generator=gen, device=device)))  # (V,)
            x = (scores + noise).argmax().view(1, 1)  # (1, 1)
            ids[i] = x[0, 0]
            if end is not None:  # a drawn end symbol starts the next record afresh, decided on the device
                hidden = zero_where(x[0, 0] == end, hidden)
    text = vocab.decode(ids.tolist())
    return text.replace(RECORD_END, "\n") if end is not None else text
