"""One training run in memory: the model, its optimizer, its batches, the state
that a resume needs, one TBPTT step and one evaluation.

Stop rules, progress and the run folder's lifetime belong to loop.py.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from ..data import Corpus, RecordBatcher, RecordCorpus, StreamBatcher
from ..data.record_batches import IGNORE
from ..device import autocast_dtype
from ..errors import ChargenError
from ..model import (
    CharRNN,
    Hidden,
    ModelConfig,
    choose_layers,
    detach_hidden,
    zero_where,
)
from ..config import TrainConfig
from ..modelfile.checkpoint import Checkpoint
from ..modelfile.state import RunState
from .schedule import NEVER_EXTENDED, lr_at
from .distributed import World, from_main, mean
from .evaluate import EvalResult, evaluate_carried, evaluate_records
from ..interrupts import interrupts_held
from ..memory import keep_freed_memory
from ..sample.preview import draw_sample
from .metrics_log import append_metrics


@dataclass
class TrainState:
    """Everything that changes during a run and must survive a resume."""

    step: int = 0
    epoch: int = 0
    window: int = 0
    elapsed: float = 0.0  # seconds spent in this run's loop, over all resumes
    best_val_loss: float = math.inf
    evals_since_best: int = 0
    hidden: Hidden | None = None


class StepFigures:
    """A step's loss, pre-clip gradient norm and verdict (bad: not finite), on their way to the host.

    On a GPU they are copied into pinned memory without waiting, and `read` waits only
    for that copy, not for the steps queued after it. Elsewhere they are simply read.
    """

    def __init__(self, loss: torch.Tensor, norm: torch.Tensor, bad: torch.Tensor) -> None:
        figures = torch.stack([loss.float(), norm.float(), bad.float()])  # (3,)
        self.done = None
        if figures.is_cuda:
            self.host = torch.empty(3, pin_memory=True).copy_(figures, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record(torch.cuda.current_stream(figures.device))  # the copy's stream, on any cuda:N
        else:
            self.host = figures

    def read(self) -> tuple[float, float, bool]:
        if self.done is not None:
            self.done.synchronize()
        loss, norm, bad = self.host.tolist()
        return loss, norm, bool(bad)


class Trainer:
    """One run: a model, its optimizer, its batches and its TrainState, on one device.

    Under torchrun each rank holds a Trainer over its own slice of the streams; `net`
    is then the model wrapped in DistributedDataParallel, which averages the gradients
    in backward, and only the main rank writes files. A RecordCorpus trains record by
    record instead (data/record_batches.py), in one process.
    """

    def __init__(self, corpus: Corpus | RecordCorpus, model_config: ModelConfig, config: TrainConfig,
                 run_dir: Path, device: torch.device, world: World = World(),
                 run_state: RunState = NEVER_EXTENDED) -> None:
        self.corpus, self.config, self.run_dir, self.device, self.world = corpus, config, run_dir, device, world
        self.run_state = run_state  # the run's history, for the schedule and the checkpoint
        if isinstance(corpus, RecordCorpus) and world.distributed:
            raise ChargenError("training on records runs in one process", "start it without torchrun")
        torch.manual_seed(config.seed)  # the same seed everywhere: every rank starts from the same weights
        # Each step frees megabytes that the next one allocates again: keep them instead of paying
        # for fresh pages every step (memory.py; benchmarks/keep_memory.py measures what it is worth).
        keep_freed_memory()
        # The layers' implementation is chosen here, once: the fastest for training on this device.
        layers = "reference" if model_config.impl == "reference" else choose_layers(
            model_config.cell, model_config.num_layers, device, training=True)
        self.model = CharRNN(model_config, layers).to(device)
        self.net: torch.nn.Module = self.model
        if world.distributed:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device] if device.type == "cuda" else None)
        # The kind of data is chosen here, once: a stream carries its state from window to window,
        # a record starts from zeros; train_step calls what was chosen and never asks which.
        # StreamBatcher or RecordBatcher: only the methods chosen with it call it.
        self.batcher: Any
        if isinstance(corpus, RecordCorpus):
            self.batcher = RecordBatcher(corpus.train, config.batch_size * config.seq_len, config.seed, device)
            self.next_batch, self.keep_state, self.score_val = self._record_batch, self._drop_state, self._val_records
        else:
            self.batcher = StreamBatcher(corpus.train_ids, config.batch_size, config.seq_len,
                                         world.rank, world.size, device)
            self.next_batch, self.keep_state, self.score_val = self._stream_window, self._carry_state, self._val_stream
        self.step_chars = 0  # the characters the last step scored (padding not counted)
        # The fused AdamW updates every parameter in one kernel: about 3% of a CPU step saved.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, betas=(0.9, 0.99),
                                           weight_decay=config.weight_decay,
                                           fused=device.type in ("cpu", "cuda"))
        self.state = TrainState()
        self.amp_dtype = autocast_dtype(device, config.precision)
        # fp16 gradients underflow without loss scaling; the scaler finds the largest safe scale. On a
        # GPU the scaler also skips a bad step without the host reading the verdict (sync-free): in
        # fp32 and bf16 its scale stays 1, so it scales nothing.
        self.fp16 = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, init_scale=2.0 ** 16 if self.fp16 else 1.0,
                                           enabled=self.fp16 or device.type == "cuda")
        self.history: list[dict] = []
        self.bad_steps = 0  # bad steps in a row, as far as read
        self.lr = 0.0  # the learning rate of the last step
        # Steps whose figures the host has not read yet. On a GPU the host reads each step's one
        # step late, so that it never waits for the step it has just queued (the GPU stays busy);
        # a step's update and state restart are decided on the device, so nothing waits on them.
        self.lag = 1 if device.type == "cuda" else 0
        self.unread: deque[StepFigures] = deque()
        self.last_figures = (math.nan, math.nan)  # (loss, norm) of the last step read
        self.lineage: list[dict] = []  # the models this run was fine-tuned from (init.py), base first

    def start_from(self, weights: dict[str, torch.Tensor], lineage: list[dict]) -> None:
        """Begin from a trained model's weights (in this run's vocabulary) instead of random ones.
        The optimizer's moments and the schedule start afresh: only the weights carry over."""
        self.model.load_state_dict(weights)
        self.lineage = lineage

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        s = self.state
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        hidden = None if s.hidden is None else (list(s.hidden) if isinstance(s.hidden, tuple) else [s.hidden])
        if self.world.distributed:  # each rank carries only its own streams' state: resume from zeros
            hidden = None
        return Checkpoint(self.model.config, self.corpus.vocab, self.model.state_dict(), self.config,
                          self.optimizer.state_dict(), rng,
                          self.scaler.state_dict() if self.scaler.is_enabled() else None,
                          s.step, s.epoch, s.window, s.elapsed, s.best_val_loss, s.evals_since_best,
                          [h.cpu() for h in hidden] if hidden else None, corpus=self.corpus.name,
                          corpus_chars=self.corpus.size, lineage=self.lineage, run_state=self.run_state)

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue exactly where `ckpt` (a last.pt of this run) stopped."""
        self.model.load_state_dict(ckpt.model)
        self.lineage = ckpt.lineage
        self.optimizer.load_state_dict(cast(dict, ckpt.optimizer))  # a last.pt holds the optimizer and the RNG
        if self.scaler.is_enabled() and ckpt.scaler:
            self.scaler.load_state_dict(ckpt.scaler)
        rng = cast(dict, ckpt.rng)
        torch.set_rng_state(rng["cpu"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        hidden: Any = ckpt.hidden  # a list of tensors, then the model's Hidden
        if hidden and not self.world.distributed:
            hidden = [h.to(self.device) for h in hidden]
            hidden = tuple(hidden) if self.model.config.cell == "lstm" else hidden[0]
        else:
            hidden = None
        self.state = TrainState(ckpt.step, ckpt.epoch, ckpt.window, ckpt.elapsed,
                                ckpt.best_val_loss, ckpt.evals_since_best, hidden)
        # The last step's rate, for an evaluation first.
        self.lr = lr_at(self.config, max(ckpt.step - 1, 0), ckpt.elapsed, self.run_state)

    def save(self, name: str) -> None:
        if self.world.is_main:
            self.checkpoint().save(self.run_dir / name)

    # -- the loop ------------------------------------------------------------------------
    def train_step(self) -> tuple[float, float]:
        """One window of every stream: forward, backward, clip, update. Returns (loss, pre-clip norm)
        of the last step read: this one, or on a GPU the one before (see `lag`; `settle` reads all)."""
        s, cfg = self.state, self.config
        if s.window >= len(self.batcher):  # end of epoch: start again from a fresh state
            s.epoch, s.window, s.hidden = s.epoch + 1, 0, None
        x, y, hidden, self.step_chars = self.next_batch()  # (B, T) each
        # Halved while retrying a bad step (as far as read: see `lag`).
        self.lr = lr_at(cfg, s.step, s.elapsed, self.run_state) * 0.5 ** self.bad_steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            logits, hidden = self.net(x, hidden)  # (B, T, V)
        # A records batch's padded targets are IGNORE: the mean runs over its real characters only.
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        self.optimizer.zero_grad(set_to_none=True)
        # Under DDP the gradients arrive averaged over all ranks: the global batch's. With fp16 the
        # loss is scaled up first and the gradients back down (both no-ops without fp16).
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        # Clip before the step: one exploding window must not throw the weights far away.
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        # Every rank judges the same mean loss and the same (averaged) norm, so all skip or step
        # together. An fp16 overflow in the gradients is the scaler's business, not a bad step.
        loss = mean(self.world, loss.detach())
        bad = ~torch.isfinite(loss) if self.fp16 else ~(torch.isfinite(loss) & torch.isfinite(norm))
        self._update(bad)
        self.keep_state(hidden, bad)
        s.step, s.window = s.step + 1, s.window + 1
        self.unread.append(StepFigures(loss, norm, bad))
        return self.settle(self.lag)

    def _stream_window(self) -> tuple[torch.Tensor, torch.Tensor, Hidden | None, int]:
        """Window `state.window` of every stream, the state the last window left, and the characters scored."""
        x, y = self.batcher.window(self.state.window)
        return x, y, self.state.hidden, self.config.batch_size * self.config.seq_len

    def _record_batch(self) -> tuple[torch.Tensor, torch.Tensor, Hidden | None, int]:
        """Batch `state.window` of this epoch's records, a zero state for each row, and the characters scored."""
        x, y, chars = self.batcher.batch(self.state.epoch, self.state.window)
        return x, y, None, chars

    def _carry_state(self, hidden: Hidden, bad: torch.Tensor) -> None:
        self.state.hidden = zero_where(bad, detach_hidden(hidden))  # a bad step restarts the state

    def _drop_state(self, hidden: Hidden, bad: torch.Tensor) -> None:
        """Records carry nothing: every batch starts from zeros."""

    def _update(self, bad: torch.Tensor) -> None:
        """The optimizer's step, skipped where `bad` (0-d bool) holds, so the weights stay finite."""
        if self.scaler.is_enabled():
            # The scaler skips any step whose gradients are not finite, as a non-finite loss's are,
            # and it decides on the device: the host does not wait for the verdict.
            self.scaler.step(self.optimizer)
            self.scaler.update(None if self.fp16 else 1.0)
        elif not bad.item():  # on a CPU reading the verdict costs nothing: there is no queue to drain
            self.optimizer.step()

    def settle(self, lag: int = 0) -> tuple[float, float]:
        """Read queued steps' figures until at most `lag` are unread, counting bad steps in a row;
        returns the last read (loss, norm)."""
        while len(self.unread) > lag:
            loss, norm, bad = self.unread.popleft().read()
            self.bad_steps = self.bad_steps + 1 if bad else 0
            self.last_figures = (loss, norm)
        return self.last_figures

    @property
    def read_step(self) -> int:
        """The step whose figures `last_figures` holds (0: none read yet)."""
        return self.state.step - len(self.unread)

    def _val_stream(self) -> EvalResult | None:
        ids = cast(Corpus, self.corpus).val_ids
        return evaluate_carried(self.model, ids, self.device) if len(ids) > 1 else None

    def _val_records(self) -> EvalResult | None:
        val = cast(RecordCorpus, self.corpus).val
        return evaluate_records(self.model, val, self.device) if val.count else None

    def evaluate(self, chars_per_s: float) -> dict:
        """Score the validation text, log a metrics record with this step's own training figures
        (read now, not a step late) and, on the main rank, a sample of `sample_chars` characters,
        count patience, and write best.pt when the loss improved or there is no validation text."""
        s = self.state
        train_loss, grad_norm = self.settle()
        val = self.score_val()
        if val is not None and self.world.distributed:  # rank 0's figure decides patience everywhere
            val = EvalResult(from_main(self.world, val.loss, self.device), val.chars)
        record: dict[str, Any] = {"step": s.step, "epoch": s.epoch, "elapsed": round(s.elapsed, 2),
                  "lr": self.lr, "train_loss": train_loss, "grad_norm": grad_norm,
                  "val_loss": val.loss if val else None, "val_bpc": val.bpc if val else None,
                  "chars_per_s": round(chars_per_s)}
        improved = val is not None and math.isfinite(val.loss) and val.loss < s.best_val_loss
        record["best"] = improved
        if self.config.sample_chars and self.world.is_main:  # what the model writes now, from a fixed seed
            record["sample"] = draw_sample(self.model, self.corpus.vocab, self.device, self.config.sample_chars,
                                           self.config.seed, records=bool(self.config.records))
        # The state changes only now: a Ctrl-C above leaves it as it was, to evaluate again on resume.
        before = s.best_val_loss, s.evals_since_best
        if improved:
            s.best_val_loss, s.evals_since_best = cast(EvalResult, val).loss, 0
        elif val is not None:  # without a validation set there is nothing to be patient about
            s.evals_since_best += 1
        self.history.append(record)
        with interrupts_held():  # best.pt and the record both, or a Ctrl-C between them loses the record
            try:
                if improved or val is None:
                    self._save_best(record, before)
            finally:  # after best.pt, so that a record never claims a best.pt that a failed write lost
                if self.world.is_main:
                    append_metrics(self.run_dir, record)
        return record

    def _save_best(self, record: dict, before: tuple[float, int]) -> None:
        try:
            self.save("best.pt")
        except ChargenError:  # not written: neither the state nor the record may claim it
            self.state.best_val_loss, self.state.evals_since_best = before
            record["best"] = False
            raise
