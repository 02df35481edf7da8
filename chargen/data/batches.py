"""Truncated-BPTT batches: a corpus's ids cut into parallel streams and read window by window."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ChargenError


class StreamBatcher:
    """Truncated-BPTT batches: the ids cut into `batch_size` parallel streams.

        ids:     a b c d e f g h i j k l m n o p q r s t u v w x   (N ids, B=3 streams)
        stream0: a b c d e f g h  | window 0 | window 1 |
        stream1: i j k l m n o p      x = [:, w*T : w*T+T]
        stream2: q r s t u v w x      y = [:, w*T+1 : w*T+T+1]  (x shifted by one)

    Window w+1 of a stream continues exactly where window w ended, so the hidden
    state the model leaves at the end of one window is the right start for the next.

    With several processes (torchrun), rank r of W takes streams r*B/W .. (r+1)*B/W - 1,
    so the ranks together see exactly the batch one process would.

    `ids` is an int64 tensor, or a numpy array of any integer type (usually the memory
    map of a prepared corpus): then each window is read from it when asked for, and
    only on a GPU with room to spare is the whole array copied to the device once.
    """

    RESIDENT_MAX = 1 << 26  # ids (512 MB as int64) that may live on a GPU instead of being copied per step

    def __init__(self, ids: torch.Tensor | np.ndarray, batch_size: int, seq_len: int, rank: int = 0,
                 world_size: int = 1, device: torch.device | str = "cpu") -> None:
        stream_len = len(ids) // batch_size
        self.windows = (stream_len - 1) // seq_len
        if self.windows < 1:
            need = batch_size * (seq_len + 1)
            raise ChargenError(f"the training text is too short for one batch: {len(ids)} characters, "
                               f"batch size {batch_size} x (sequence length {seq_len} + 1) = {need} needed",
                               "use a longer text, or a smaller --batch-size / --seq-len")
        if batch_size % world_size:
            raise ChargenError(f"batch size {batch_size} does not split evenly over {world_size} processes",
                               f"use a --batch-size that is a multiple of {world_size}")
        self.seq_len, self.device = seq_len, torch.device(device)
        per = batch_size // world_size
        streams = ids[: stream_len * batch_size].reshape(batch_size, stream_len)[rank * per: (rank + 1) * per]
        if isinstance(streams, np.ndarray) and self.device.type == "cuda" and streams.size <= self.RESIDENT_MAX:
            streams = torch.from_numpy(streams.astype(np.int64))
        self.streams = streams.to(self.device) if isinstance(streams, torch.Tensor) else streams  # (B/W, N/B)

    def __len__(self) -> int:
        return self.windows

    def window(self, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of window `w`, each (B/W, T) int64 on the device."""
        start = w * self.seq_len
        ids = self.streams[:, start: start + self.seq_len + 1]  # (B/W, T+1)
        if isinstance(ids, np.ndarray):  # read from the memory map now: only this window is touched
            ids = torch.from_numpy(ids.astype(np.int64)).to(self.device, non_blocking=True)
        return ids[:, :-1], ids[:, 1:]
