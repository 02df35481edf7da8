"""`train()`: a whole run from a corpus (a file, or many) to best.pt and last.pt in a run folder.

It owns the run's lifetime: choosing and locking the folder, resuming, the stop
rules (steps, time, patience, non-finite loss, Ctrl-C), the progress bar, and the
final save. The step itself is trainer.py's.
"""
from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import cast

import numpy as np

from ..data import Corpus, RecordCorpus, Sources, Vocab
from ..data.renumber import in_vocab
from ..config import RunConfig, TrainConfig
from ..config.toml import CONFIG_FILE, write_config_file
from ..data.cache import CorpusPaths
from ..device import resolve_device
from ..errors import ChargenError, write_error
from ..model import ModelConfig
from ..modelfile.checkpoint import Checkpoint, remove_stale_temp_files
from ..modelfile.state import RunState
from ..progress import TrainBar
from ..threads import Threads
from .board import EVERY as BOARD_EVERY
from .board import Board, require_tensorboard
from .schedule import extend_budget
from .corpus_source import changed_note, load_for_run, run_sources
from .distributed import World, barrier, connect, disconnect, from_main, world_from_env
from .init import Start, read_base, start_from
from .metrics_log import last_logged_step
from .recipes import DropoutChoice, choose_dropout, eval_cadence
from .runs import (RunLock, check_unchanged, choose_run_dir, default_run_dir, make_run_dir, newest_run,
                   resume_checkpoint, state_files)
from .trainer import Trainer

SPEED_STEPS = (3, 12)  # steps untimed, then timed, to measure the speed a time budget's dropout needs
MAX_BAD_STEPS = 5  # consecutive non-finite steps (each retried at half the learning rate) before giving up
# (on a GPU the first retry is queued before the bad step is read, so it runs at the full rate)


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
    startup_s: float = 0.0  # from the call to the first step: the corpus, the dropout rule's timed steps, the model
    is_main: bool = True  # False on the ranks of a torchrun that do not write
    history: list[dict] = field(default_factory=list)
    model_config: ModelConfig | None = None  # the model trained (on a resume, the checkpoint's)
    dropout_choice: DropoutChoice | None = None  # how the dropout rule chose, when it did
    records: dict | None = None  # a records run's {"train": records, "val": records, "skipped": records}
    threads: str = ""  # the CPU thread count at the end and how it came to be (Threads.summary)

    @property
    def best_val_bpc(self) -> float:
        return self.best_val_loss / math.log(2)


def train(corpus_path: CorpusPaths, model_config: ModelConfig, config: TrainConfig, out: Path | None = None,
          resume: bool = False, progress: bool | None = None, root: str | Path = "checkpoints",
          auto_dropout: bool = False, more_time: float | None = None, max_steps: int | None = None,
          on_eval: Callable[[dict], None] | None = None, notes: Callable[[str], None] | None = None,
          init: str | os.PathLike | None = None, resume_cell: str | None = None) -> TrainResult:
    """Train a model on `corpus_path` and write best.pt, last.pt and metrics.jsonl into the run folder.

    `corpus_path` is a file, a folder, a glob pattern, a list of them, or Sources (with
    include/exclude patterns); prepare_corpus says how several files are joined, and
    config.vocab whether the model reads characters or bytes. The folder is `out`, else
    `<root>/<corpus>-<cell>` (the corpus named by Sources.name: the first path's file name
    without suffix, or its folder's name; `-2`, `-3`, ... when that holds a run).
    With `auto_dropout`, model_config's dropout is replaced by the CPU recipe's rule
    (recipes.choose_dropout) from the corpus's training characters and the budget: its steps,
    or for a time limit alone its seconds at the speed measured over a few throwaway steps.

    With `resume`, the run in `out` (without `out`: the newest run of this corpus, any cell,
    runs.newest_run) continues from the newer of its last.pt and best.pt (both hold the
    training state: last.pt is written at every evaluation too), which supplies both configs
    and the exact position; the passed configs are ignored but for their RunConfig part (where the
    run goes and what it shows of itself: nothing that changes its training),
    and it reads the run's own include/exclude patterns when `corpus_path` gives none. `more_time`
    (seconds on top of what the run has spent) and `max_steps` (a new total), when given,
    replace its budget (schedule.extend_budget: the schedule decays anew from where it stands)
    and restart its patience count. `progress=None` shows a bar only on a terminal; `notes`, when
    given, is called with each line worth telling a person before training (records left out; a
    line starting "warning: " when a resumed run's corpus changed size). Ctrl-C saves last.pt and
    returns with stop_reason "interrupted" (a Ctrl-C during a save waits for it to end). A failed
    write (a full disk) raises ChargenError after a last try to save last.pt. `on_eval` is called with each
    evaluation's metrics record (its "sample" included) once it is written; with
    `config.tensorboard`, event files go to `<run>/tensorboard/` (board.py). Started by torchrun,
    every rank calls this and trains its share (see Trainer); only rank 0 touches the run folder,
    calls `on_eval` and writes events. Raises ChargenError for bad input, an unwritable folder, a
    loss that stays non-finite, or --tensorboard without the tensorboard package (before training).

    `resume` without `out` continues the newest run of this corpus under `root` (of the cell
    `resume_cell`, when given; runs.newest_run), named through `notes`.

    `init` (else `config.init`) starts a new run from a trained model instead of random weights: a
    checkpoint, a model folder, or a shipped model's name (init.py). The model's shape and kind of
    vocabulary come from it (model_config's dropout and impl are kept), characters of the corpus it
    lacks are added to its vocabulary, and the run records it in its lineage. A resumed fine-tune
    continues from its own last.pt, and stays one.
    """
    t0 = time.perf_counter()
    world = world_from_env()
    out = None if out is None else Path(out)
    if resume and out is None:  # the newest run of this corpus (of `resume_cell`, if given)
        out = newest_run(corpus_path, resume_cell, root)
        if notes is not None and world.is_main:
            notes(f"resuming {out}")
    base = None
    if not resume and (init or config.init):  # the base's shape and kind of vocabulary, before its run folder
        config = replace(config, init=str(init or config.init))
        base = read_base(config.init)
        if base[1].vocab.kind == "bytes" and config.records:
            raise ChargenError("--records reads text, and the --init model reads bytes",
                               "start records from a chars model, or from scratch")
        model_config = replace(base[1].model_config, dropout=model_config.dropout, impl=model_config.impl)
        config = replace(config, vocab=base[1].vocab.kind)
    default = default_run_dir(corpus_path, model_config.cell, root)
    run_dir = choose_run_dir(out, default, resume) if world.is_main or resume else (out or default)
    ckpt = source = None
    state = RunState()
    # What the folder holds now, before the corpus is read (minutes, for a large one): checked
    # again under the lock, for another run that saved there in the meantime.
    seen = state_files(run_dir) if resume else {}
    if resume:
        source, ckpt, model_config, config, state = _resume_configs(run_dir, config, more_time, max_steps)
    elif more_time is not None or max_steps is not None:
        raise ChargenError("more_time and max_steps extend a resumed run", "set a new run's budget in its TrainConfig")
    if config.tensorboard:
        require_tensorboard()
    corpus_path = run_sources(corpus_path, state)
    state = replace(state, corpus=" ".join(os.path.abspath(p) for p in corpus_path.paths),
                    include=corpus_path.include, exclude=corpus_path.exclude)
    device = connect(world, resolve_device(config.device))
    try:
        corpus = load_for_run(corpus_path, config, world, progress)
        if isinstance(corpus, RecordCorpus) and notes is not None and world.is_main:
            for line in corpus.notes():
                notes(line)
        start = None
        if base is not None:
            start = start_from(base[0], base[1], corpus.vocab, _char_counts(corpus), config.init)
            corpus, model_config = in_vocab(corpus, start.vocab), replace(model_config, vocab_size=len(start.vocab))
            if notes is not None and world.is_main:
                notes(_start_note(start))
        elif ckpt is not None and ckpt.lineage and _fits(corpus.vocab, ckpt.vocab):
            corpus = in_vocab(corpus, ckpt.vocab)  # a fine-tune's vocabulary is its base's and its corpus's
        if ckpt is not None and corpus.vocab != ckpt.vocab:
            raise ChargenError(f"{Sources.of(corpus_path)} does not match the run in {run_dir}: its characters differ",
                               "resume with the corpus the run was started on")
        changed = changed_note(corpus, ckpt.corpus_chars) if ckpt is not None else None
        if changed and notes is not None and world.is_main:
            notes(changed)
        model_config = replace(model_config, vocab_size=len(corpus.vocab))
        if config.eval_every == 0:  # recipes.eval_cadence; the run's files then hold the steps chosen
            config = replace(config, eval_every=eval_cadence(config, len(corpus.train_ids), world.size))
        if world.is_main:
            make_run_dir(run_dir)
        with RunLock(run_dir) if world.is_main else contextlib.nullcontext():
            if world.is_main:
                check_unchanged(run_dir, seen, resume)
                remove_stale_temp_files(run_dir)
            choice = None
            if auto_dropout and ckpt is None:
                choice = _choose_dropout(corpus, model_config, config, run_dir, device, world)
                model_config = replace(model_config, dropout=choice.dropout)
            if world.is_main and not (resume and (run_dir / CONFIG_FILE).is_file()):
                _write_settings(run_dir, model_config, config, corpus_path)
            trainer = _make_trainer(corpus, model_config, config, run_dir, device, world, state)
            if start is not None:
                trainer.start_from(start.weights, [start.base, *cast(tuple[Path, Checkpoint], base)[1].lineage])
            if ckpt is not None:
                _restore(trainer, ckpt, cast(Path, source), new_budget=more_time is not None or max_steps is not None)
            with Board(run_dir, config.tensorboard and world.is_main, trainer.state.step) as board:
                result = _run(trainer, progress if world.is_main else False, time.perf_counter() - t0, board,
                              on_eval if world.is_main else None, resumed=ckpt is not None)
            result.dropout_choice = choice
            if isinstance(corpus, RecordCorpus):
                result.records = {"train": corpus.train.count, "val": corpus.val.count,
                                  "skipped": sum(corpus.skipped.values())}
            # Under torchrun every rank leaves together: rank 0 may still be saving when the others
            # finish, and a rank that tears the process group down under a busy peer can abort.
            barrier(world)
            return result
    finally:
        disconnect(world)


def _write_settings(run_dir: Path, model_config: ModelConfig, config: TrainConfig, sources: Sources) -> None:
    """config.toml: the settings the run starts with, from which `chargen train --config` repeats it (a
    resume keeps the file of the run's start, and writes one only into a folder that has none)."""
    try:
        write_config_file(run_dir, model_config, config, sources)
    except OSError as e:
        raise write_error("settings file", run_dir / CONFIG_FILE, e) from None


def _char_counts(corpus: Corpus | RecordCorpus) -> dict[str, int]:
    """How often each character occurs in the training part (for a new character's first bias)."""
    counts = np.bincount(np.asarray(corpus.train_ids), minlength=len(corpus.vocab))  # (V,)
    return {c: int(n) for c, n in zip(corpus.vocab.chars, counts) if n}


def _fits(corpus: Vocab, model: Vocab) -> bool:
    """Whether every character of the corpus's vocabulary has a row in the model's."""
    return corpus.kind == model.kind and set(corpus.chars) <= set(model.chars)


def _start_note(start: Start) -> str:
    """'starting from base (sha256 1a2b3c4d...); 3 new characters: 'é', 'ñ', '€'' for a person to read."""
    new = ", ".join(repr(c) for c in start.new_chars[:8]) + (", ..." if len(start.new_chars) > 8 else "")
    added = f"; {len(start.new_chars)} new characters: {new}" if start.new_chars else "; no new characters"
    return f"starting from {start.base['name']} (sha256 {start.base['sha256'][:12]}){added}"


def _resume_configs(run_dir: Path, config: TrainConfig, more_time: float | None, max_steps: int | None
                    ) -> tuple[Path, Checkpoint, ModelConfig, TrainConfig, RunState]:
    """The run's newest checkpoint (its path and contents), its own configs, but for where it runs,
    what it shows, and any new budget, and its run state."""
    path = resume_checkpoint(run_dir)
    ckpt = Checkpoint.read(path)
    if ckpt.train_config is None or ckpt.optimizer is None or ckpt.rng is None:
        raise ChargenError(f"cannot resume from {path}: it holds a model but no training state",
                           "start a new run without --resume")
    # A run that wrote TensorBoard events goes on writing them: its curves would otherwise stop unasked.
    own = replace(ckpt.train_config, **{f.name: getattr(config, f.name) for f in fields(RunConfig)})
    own = replace(own, tensorboard=config.tensorboard or ckpt.train_config.tensorboard)
    state = ckpt.run_state
    if more_time is not None or max_steps is not None:
        own, state = extend_budget(own, ckpt.step, ckpt.elapsed, more_time, max_steps, state)
    return path, ckpt, ckpt.model_config, own, state


def _choose_dropout(corpus: Corpus | RecordCorpus, model_config: ModelConfig, config: TrainConfig, run_dir: Path,
                    device, world: World) -> DropoutChoice:
    """The recipe's dropout for this run. Only a time limit alone needs this machine's speed:
    a throwaway trainer times SPEED_STEPS of the model, and the run itself starts afresh from its seed."""
    train_chars = len(corpus.train_ids)
    if config.max_steps:
        return choose_dropout(config, train_chars)
    trainer = _make_trainer(corpus, model_config, config, run_dir, device, world)
    untimed, timed = SPEED_STEPS
    for _ in range(untimed):  # allocation and kernel set-up: not this model's speed
        trainer.train_step()
    trainer.settle()
    times, chars = [], []
    for _ in range(timed):
        t = time.perf_counter()
        trainer.train_step()
        trainer.settle()  # on a GPU, wait for the step: each step's own time
        times.append(time.perf_counter() - t)
        chars.append(trainer.step_chars)
    # The median step, not the mean: a few slow steps early in a process (another program, memory
    # touched for the first time) would otherwise plan too few passes.
    speed = statistics.median(chars) / max(statistics.median(times), 1e-9)
    return choose_dropout(config, train_chars, from_main(world, speed, device))  # one verdict on all ranks


def _make_trainer(corpus: Corpus | RecordCorpus, model_config: ModelConfig, config: TrainConfig, run_dir: Path,
                  device, world: World, state: RunState = RunState()) -> Trainer:
    try:
        return Trainer(corpus, model_config, config, run_dir, device, world, state)
    except (MemoryError, RuntimeError) as e:  # torch reports a failed allocation as a RuntimeError
        if isinstance(e, RuntimeError) and "alloc" not in str(e).lower():
            raise
        raise ChargenError(f"not enough memory on {device} for {model_config.num_layers} layers of "
                           f"{model_config.hidden_size} units", "use a smaller --hidden-size or --num-layers") from None


def _restore(trainer: Trainer, ckpt: Checkpoint, source: Path, new_budget: bool) -> None:
    """Continue from `ckpt`; with a new budget, patience counts afresh (a run it stopped may go on)."""
    try:
        trainer.restore(ckpt)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ChargenError(f"cannot resume from {source}: it lacks or garbles the training "
                           f"state ({type(e).__name__}: {e})", "start a new run without --resume") from None
    if new_budget:
        trainer.state.evals_since_best = 0


def _stop_reason(trainer: Trainer) -> str | None:
    s, cfg = trainer.state, trainer.config
    if cfg.max_steps and s.step >= cfg.max_steps:
        return "max_steps"
    if cfg.max_time and s.elapsed >= cfg.max_time:
        return "max_time"
    if cfg.patience and s.evals_since_best >= cfg.patience:
        return "patience"
    return None


def _try_to_save(trainer: Trainer) -> None:
    """Save last.pt if the disk still takes it; the error that ended the run is the one to report."""
    try:
        trainer.save("last.pt")
    except (ChargenError, KeyboardInterrupt):
        pass


def _unfinished_evaluation(trainer: Trainer) -> bool:
    """Whether a resumed run stands at an evaluation step whose record is not in metrics.jsonl:
    Ctrl-C stopped it inside that evaluation (rank 0's verdict, on every rank)."""
    s, world = trainer.state, trainer.world
    missing = s.step > 0 and s.step % trainer.config.eval_every == 0 and \
        (not world.is_main or last_logged_step(trainer.run_dir) < s.step)
    return bool(from_main(world, float(missing), trainer.device))


def _run(trainer: Trainer, progress: bool | None, startup: float, board: Board,
         on_eval: Callable[[dict], None] | None, resumed: bool = False) -> TrainResult:
    s, cfg = trainer.state, trainer.config
    bar = TrainBar(cfg.max_steps, cfg.max_time, s.step, s.elapsed, progress)
    start, step_time, steps_here, chars_here = time.perf_counter() - s.elapsed, 0.0, 0, 0
    evaluated_at, reason = -1, None
    # Only a lone CPU process adapts its threads: a GPU step waits on the device, and torchrun's
    # ranks wait on each other, so their step times say nothing of this process's thread count.
    adapt = trainer.device.type == "cpu" and not trainer.world.distributed
    threads = Threads.for_loop(cfg.threads, adapt)

    def speed() -> float:  # training characters (not padding) per second in this process, evaluation excluded
        return chars_here / max(step_time, 1e-9)

    def evaluate() -> None:
        record = trainer.evaluate(speed())
        bar.show_eval(record)
        board.log_eval(record)
        if on_eval is not None:
            on_eval(record)

    try:
        if resumed and _unfinished_evaluation(trainer):  # before any step: the record the state belongs to
            evaluate()
            evaluated_at = s.step
        while (reason := _stop_reason(trainer)) is None:
            t0 = time.perf_counter()
            trainer.train_step()
            if trainer.bad_steps:  # retrying: wait for this step's verdict (on a GPU it comes a step late)
                trainer.settle()
            took = time.perf_counter() - t0
            step_time, steps_here = step_time + took, steps_here + 1
            if (note := threads.step(took)) is not None:
                bar.note(note)
            chars_here += trainer.step_chars
            if trainer.bad_steps >= MAX_BAD_STEPS:
                trainer.save("last.pt")
                raise ChargenError(f"the loss was not finite for {MAX_BAD_STEPS} steps in a row at step {s.step}, "
                                   f"down to 1/{2 ** (MAX_BAD_STEPS - 1)} of the learning rate; "
                                   f"the last finite weights are in {trainer.run_dir / 'last.pt'}",
                                   "lower --lr or --grad-clip")
            s.elapsed = from_main(trainer.world, time.perf_counter() - start, trainer.device)  # one clock for all ranks
            if s.step % cfg.eval_every == 0:
                evaluate()
                evaluated_at = s.step
            # At each evaluation too: a run killed at any moment resumes from its last evaluation at worst.
            if s.step % cfg.save_every == 0 or evaluated_at == s.step:
                trainer.save("last.pt")
            bar.update(s.step, s.elapsed, *trainer.last_figures, speed())
            if s.step % BOARD_EVERY == 0:  # figures the host has read already: no wait for the device
                board.log_step(s.step, trainer.lr, speed(), trainer.read_step, *trainer.last_figures)
        if evaluated_at != s.step and steps_here > 0:
            evaluate()
    except KeyboardInterrupt:
        reason = "interrupted"
    except ChargenError:  # a failed write (a full disk, a folder gone): keep what can still be kept
        _try_to_save(trainer)
        raise
    finally:
        bar.close()
        threads.restore()
    try:
        trainer.save("last.pt")  # a Ctrl-C during the save comes once it is complete
    except KeyboardInterrupt:
        reason = "interrupted"
    return TrainResult(trainer.run_dir, s.step, s.best_val_loss, s.elapsed, trainer.model.num_parameters(),
                       speed(), reason, str(trainer.device), startup, trainer.world.is_main, trainer.history,
                       trainer.model.config, threads=threads.summary())
