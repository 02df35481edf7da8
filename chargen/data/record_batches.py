"""Record batches: each row one whole record from a zero state, padded to the batch's longest row,
with rows of about the same length batched together so that little is padding.

    row of "Ann" (size 4):   x = END A n n      y = A n n END
    row of "Bo"  (size 3):   x = END B o END    y = B o END IGNORE    (padding scores nothing)
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import numpy as np
import torch

from .records import RecordSet

IGNORE = -100  # F.cross_entropy's ignore_index: a padded target, scored by nothing


def pack(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Where batches of rows sorted by size (ascending) begin and end: a batch takes rows while
    rows x its longest size stays within `budget` (at least one row). Returns (batches + 1,) bounds."""
    bounds, first = [0], 0
    for i, size in enumerate(sizes.tolist()):
        if i > first and (i - first + 1) * size > budget:
            bounds.append(i)
            first = i
    bounds.append(len(sizes))
    return np.array(bounds, dtype=np.int64)


def padded_rows(records: RecordSet, rows: np.ndarray, device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of the records `rows`, each (R, T) int64 on `device`, T the longest size.

    A row's inputs past its record are the ids that follow it: the RNN reads left to right, so
    they cannot reach the outputs that are scored, and its targets there are IGNORE.
    """
    sizes = records.sizes[rows]  # (R,)
    t = int(sizes.max())
    at = np.minimum(records.starts[rows, None] + np.arange(t + 1), len(records.ids) - 1)  # (R, T+1)
    ids = torch.from_numpy(records.ids[at].astype(np.int64))  # (R, T+1)
    y = ids[:, 1:].masked_fill(torch.from_numpy(np.arange(t)[None, :] >= sizes[:, None]), IGNORE)  # (R, T)
    return ids[:, :-1].to(device, non_blocking=True), y.to(device, non_blocking=True)


def sorted_batches(records: RecordSet, budget: int) -> Iterator[np.ndarray]:
    """The records in batches of about `budget` padded ids, shortest first; every record once."""
    order = np.argsort(records.sizes, kind="stable")
    bounds = pack(records.sizes[order], budget)
    for a, b in pairwise(bounds.tolist()):
        yield order[a:b]


class RecordBatcher:
    """Training batches of whole records, about `budget` (batch_size x seq_len) padded ids each.

    Every epoch sorts the records by size, in a new random order among records of equal size,
    cuts them into batches by `pack` and shuffles the batches. The sorted sizes never change,
    so neither do the batches' shapes or their number; which records share a batch does. The
    order of epoch e depends on (seed, e) alone, so a resumed run reads what it would have.
    """

    def __init__(self, records: RecordSet, budget: int, seed: int, device: torch.device | str = "cpu") -> None:
        self.records, self.seed, self.device = records, seed, torch.device(device)
        self.by_size = np.sort(records.sizes, kind="stable")  # (R,)
        self.bounds = pack(self.by_size, budget)  # (batches + 1,)
        self.epoch, self.plan = -1, np.zeros(0, dtype=np.int64)
        self.order = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def _plan(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        self.order = np.lexsort((rng.random(self.records.count), self.records.sizes))  # (R,) by size, ties shuffled
        self.plan, self.epoch = rng.permutation(len(self)), epoch

    def batch(self, epoch: int, w: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Inputs and targets (R, T) of batch `w` of `epoch` on the device, and the characters it scores."""
        if epoch != self.epoch:
            self._plan(epoch)
        b = self.plan[w]
        rows = self.order[self.bounds[b]: self.bounds[b + 1]]
        x, y = padded_rows(self.records, rows, self.device)
        return x, y, int(self.by_size[self.bounds[b]: self.bounds[b + 1]].sum())
