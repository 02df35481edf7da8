"""`train()`: a whole run from a corpus file to best.pt and last.pt in a run folder.

It owns the run's lifetime: choosing and locking the folder, resuming, the stop
rules (steps, time, patience, non-finite loss, Ctrl-C), the progress bar, and the
final save. The step itself is trainer.py's.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from .checkpoint import read_checkpoint, remove_stale_temp_files
from .config import TrainConfig
from .corpus import Vocab, load_corpus
from .device import resolve_device
from .errors import ChargenError
from .model import ModelConfig
from .runs import RunLock, choose_run_dir, default_run_dir, make_run_dir
from .trainer import Trainer

MAX_BAD_STEPS = 5  # consecutive non-finite steps (each retried at half the learning rate) before giving up


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best_val_loss: float  # nats per character; inf if never evaluated
    elapsed: float  # seconds in the training loop, over all resumes
    parameters: int
    chars_per_s: float  # training throughput of this process, evaluation excluded
    stop_reason: str  # max_steps | max_time | patience | interrupted
    device: str = "cpu"
    history: list[dict] = field(default_factory=list)

    @property
    def best_val_bpc(self) -> float:
        return self.best_val_loss / math.log(2)


def train(corpus_path: str | Path, model_config: ModelConfig, config: TrainConfig, out: Path | None = None,
          resume: bool = False, progress: bool | None = None, root: str | Path = "checkpoints") -> TrainResult:
    """Train a model on `corpus_path` and write best.pt, last.pt and metrics.jsonl into the run folder.

    With `resume`, the run folder's last.pt supplies both configs and the exact
    position; the passed configs are ignored. `progress=None` shows a bar only on a
    terminal. Ctrl-C saves last.pt and returns with stop_reason "interrupted".
    Raises ChargenError for bad input, an unwritable folder, or a loss that stays non-finite.
    """
    run_dir = choose_run_dir(out, default_run_dir(corpus_path, model_config.cell, root), resume)
    ckpt = read_checkpoint(run_dir / "last.pt") if resume else None
    if ckpt is not None:  # the run's own configs, except where it runs
        model_config, stored = _stored_configs(ckpt, run_dir)
        config = replace(stored, device=config.device, precision=config.precision)
    corpus = load_corpus(corpus_path, config.val_frac)
    if ckpt is not None and corpus.vocab != Vocab(tuple(ckpt["vocab"])):
        raise ChargenError(f"{corpus_path} does not match the run in {run_dir}: its characters differ",
                           "resume with the corpus the run was started on")
    device = resolve_device(config.device)
    model_config = replace(model_config, vocab_size=len(corpus.vocab))
    make_run_dir(run_dir)
    with RunLock(run_dir):
        remove_stale_temp_files(run_dir)
        try:
            trainer = Trainer(corpus, model_config, config, run_dir, device)
        except (MemoryError, RuntimeError) as e:  # torch reports a failed allocation as a RuntimeError
            if isinstance(e, RuntimeError) and "alloc" not in str(e).lower():
                raise
            raise ChargenError(f"not enough memory on {device} for {model_config.num_layers} layers of "
                               f"{model_config.hidden_size} units", "use a smaller --hidden-size or --num-layers") from None
        if ckpt is not None:
            try:
                trainer.restore(ckpt)
            except (KeyError, TypeError, ValueError, RuntimeError) as e:
                raise ChargenError(f"cannot resume from {run_dir / 'last.pt'}: it lacks or garbles the training "
                                   f"state ({type(e).__name__}: {e})", "start a new run without --resume") from None
        return _run(trainer, progress)


def _stored_configs(ckpt: dict, run_dir: Path) -> tuple[ModelConfig, TrainConfig]:
    try:
        return ModelConfig(**ckpt["model_config"]), TrainConfig(**ckpt["train_config"])
    except (KeyError, TypeError) as e:
        raise ChargenError(f"cannot resume from {run_dir / 'last.pt'}: its configuration is damaged ({e})",
                           "start a new run without --resume") from None


def _stop_reason(trainer: Trainer) -> str | None:
    s, cfg = trainer.state, trainer.config
    if cfg.max_steps and s.step >= cfg.max_steps:
        return "max_steps"
    if cfg.max_time and s.elapsed >= cfg.max_time:
        return "max_time"
    if cfg.patience and s.evals_since_best >= cfg.patience:
        return "patience"
    return None


def _run(trainer: Trainer, progress: bool | None) -> TrainResult:
    s, cfg = trainer.state, trainer.config
    chars_per_step = cfg.batch_size * cfg.seq_len
    bar = _Bar(cfg, s.step, s.elapsed, progress)
    start, step_time, steps_here = time.perf_counter() - s.elapsed, 0.0, 0
    loss = norm = math.nan
    evaluated_at, reason = -1, None

    def speed() -> float:  # training characters per second in this process, evaluation excluded
        return steps_here * chars_per_step / max(step_time, 1e-9)

    try:
        while (reason := _stop_reason(trainer)) is None:
            t0 = time.perf_counter()
            loss, norm = trainer.train_step()
            step_time, steps_here = step_time + time.perf_counter() - t0, steps_here + 1
            if trainer.bad_steps >= MAX_BAD_STEPS:
                trainer.save("last.pt")
                raise ChargenError(f"the loss was not finite for {MAX_BAD_STEPS} steps in a row at step {s.step}, "
                                   f"down to 1/{2 ** (MAX_BAD_STEPS - 1)} of the learning rate; the last finite weights "
                                   f"are in {trainer.run_dir / 'last.pt'}", "lower --lr or --grad-clip")
            s.elapsed = time.perf_counter() - start
            if s.step % cfg.eval_every == 0:
                bar.show_eval(trainer.evaluate(loss, norm, speed()))
                evaluated_at = s.step
            if s.step % cfg.save_every == 0:
                trainer.save("last.pt")
            bar.update(s.step, s.elapsed, loss, norm, speed())
        if evaluated_at != s.step and steps_here > 0:
            trainer.evaluate(loss, norm, speed())
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        bar.close()
    trainer.save("last.pt")
    return TrainResult(trainer.run_dir, s.step, s.best_val_loss, s.elapsed, trainer.model.num_parameters(),
                       speed(), reason, str(trainer.device),
                       trainer.history)


class _Bar:
    """A tqdm bar on stderr over steps (with --max-steps) or seconds (with only --max-time)."""

    def __init__(self, cfg: TrainConfig, step: int, elapsed: float, enabled: bool | None) -> None:
        self.by_steps = bool(cfg.max_steps)
        total = cfg.max_steps if self.by_steps else cfg.max_time
        self.val = "-"
        self.bar = tqdm(total=total, initial=step if self.by_steps else int(elapsed),
                        unit="step" if self.by_steps else "s", disable=None if enabled is None else not enabled,
                        dynamic_ncols=True, leave=False,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]")
        self.last_refresh = 0.0

    def update(self, step: int, elapsed: float, loss: float, norm: float, speed: float) -> None:
        now = time.monotonic()
        if now - self.last_refresh < 0.2:  # formatting the bar every step would cost more than a step
            return
        self.last_refresh = now
        self.bar.n = step if self.by_steps else min(elapsed, self.bar.total)
        self.bar.set_postfix_str(f"step {step} loss {loss:.3f} val {self.val} |g| {norm:.2f} "
                                 f"{speed / 1000:.1f}k char/s", refresh=True)

    def show_eval(self, record: dict) -> None:
        if record["val_loss"] is not None:
            self.val = f"{record['val_loss']:.3f}"

    def close(self) -> None:
        self.bar.close()
