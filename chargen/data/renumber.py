"""A prepared corpus in another vocabulary's numbering: what a run started from a trained model
needs, since the model's vocabulary (its rows) and the corpus's own numbering differ. Pure
array work: a table from the corpus's ids to the model's, applied once."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..errors import ChargenError
from .corpus import Corpus
from .records import RecordCorpus, RecordSet
from .utf8 import id_dtype
from .vocab import Vocab


def id_table(old: Vocab, new: Vocab) -> np.ndarray:
    """(len(old),) int64: the id in `new` of each of `old`'s characters. Every character of `old`
    must be in `new`, but for `old`'s unknown symbol, which may become `new`'s; a bytes
    vocabulary maps to itself only. ChargenError otherwise (naming up to ten characters)."""
    if old.kind != new.kind:
        raise ChargenError(f"a {old.kind} corpus cannot be read as {new.kind}",
                           f"use a model of {old.kind} (--vocab {old.kind})")
    if old.kind == "bytes":
        return np.arange(256, dtype=np.int64)
    known = set(new.chars)
    missing = [c for c in old.chars if c not in known and not (c == old.unk and new.unk is not None)]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:10])
        raise ChargenError(f"characters missing from the model's vocabulary: {shown}",
                           "the run folder holds another corpus's model; start a new run")
    return new.encode("".join(old.chars)).numpy()  # the unknown symbol becomes `new`'s


def in_vocab(corpus: Corpus | RecordCorpus, vocab: Vocab) -> Corpus | RecordCorpus:
    """`corpus` with its ids renumbered into `vocab` (id_table's rule): the same text, `vocab`'s
    numbering. The training ids are read into memory once (a memory-mapped cache stays as it is)."""
    if vocab == corpus.vocab:
        return corpus
    table = id_table(corpus.vocab, vocab)
    if isinstance(corpus, RecordCorpus):
        def renumbered(records: RecordSet) -> RecordSet:
            return replace(records, ids=table[np.asarray(records.ids)].astype(id_dtype(len(vocab))))
        return replace(corpus, vocab=vocab, train=renumbered(corpus.train), val=renumbered(corpus.val))
    train = table[np.asarray(corpus.train_ids)].astype(id_dtype(len(vocab)))  # (N_train,)
    val = torch.from_numpy(table[corpus.val_ids.numpy()])  # (N_val,) int64
    return replace(corpus, vocab=vocab, train_ids=train, val_ids=val)
