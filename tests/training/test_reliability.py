"""Reliability: crashes (SIGKILL), full disks, NaN losses, hostile checkpoints, two runs
in one folder, Ctrl-C, broken pipes and memory bounds, each through the real entry point
where it matters (a `python -m chargen` subprocess or typer's CliRunner).

Subprocesses run on one torch thread: a tiny model trains about three times faster on
one thread than on two busy ones on a 2-core machine, and the results do not depend on it.
"""
from __future__ import annotations

import builtins
import errno
import json
import math
import os
import pickle
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen import (
    ChargenError,
    CharRNN,
    ModelConfig,
    SampleConfig,
    TrainConfig,
    evaluate_carried,
    generate,
    load_model,
    read_checkpoint,
    train,
)
from chargen.cli import app
from chargen.data.cache import prepare_corpus
from chargen.modelfile.checkpoint import FORMAT_VERSION, Checkpoint
from chargen.training.runs import RunLock, resume_checkpoint
from chargen.training.trainer import Trainer

runner = CliRunner()  # this typer keeps result.stdout and result.stderr apart
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
TINY = ["--hidden-size", "8", "--embedding-dim", "4", "--num-layers", "1", "--batch-size", "2", "--seq-len", "8",
        "--max-time", "0", "--device", "cpu", "-q", "--threads", "1"]  # one thread: runs compared bit for bit
TMP_NAME = re.compile(r"\.(best|last)\.pt\.[^/]+\.tmp")  # what save_checkpoint's mkstemp names its temp files
RUN_FILES = {"best.pt", "last.pt", "metrics.jsonl", "run.lock", "config.toml"}
VOLATILE = ("elapsed", "chars_per_s")  # wall-clock fields: the only ones that may differ after a resume


def chargen_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "chargen", *map(str, args)]


def default_sigint() -> None:
    """preexec_fn of a child that gets Ctrl-C: a shell without job control starts a background job (the test
    suite, then its children) with SIGINT ignored, and Python installs its Ctrl-C handler only where it is not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def domain_error_line(result) -> str:
    """Exit 1, nothing on stdout, one stderr line 'error: ... (hint: ...)', no traceback; returns the line."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "hint:" in lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def stable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in VOLATILE}


def finish(proc: subprocess.Popen) -> None:
    """Kill a subprocess this test started if it still runs, and reap it (a zombie still answers kill -0)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str, err: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"chargen exited {proc.returncode} before {what}: "
                                 f"{err.read_text() if err and err.exists() else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def temp_files(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.iterdir() if TMP_NAME.fullmatch(p.name)} if run_dir.exists() else set()


def check_run_folder(run_dir: Path) -> dict[str, int]:
    """Every best.pt/last.pt present loads into a finite model; anything else is a known run file or a temp file."""
    steps = {}
    for name in ("best.pt", "last.pt"):
        path = run_dir / name
        if path.exists():
            state = read_checkpoint(path)
            model = Checkpoint.from_dict(state, path).build_model(path)
            assert all(torch.isfinite(p).all() for p in model.parameters()), name
            steps[name] = state["step"]
    stray = sorted({p.name for p in run_dir.iterdir()} - RUN_FILES)
    assert all(TMP_NAME.fullmatch(name) for name in stray), stray
    if "best.pt" in steps and "last.pt" in steps:
        assert steps["best.pt"] <= steps["last.pt"] + 1  # best.pt at step k is written just before last.pt at k
    return steps


# -- 1. crash safety: SIGKILL at random moments -------------------------------------------------
@pytest.mark.slow
def test_sigkill_at_random_moments_never_corrupts_a_run(interrupt_at, tmp_path, corpus_file, monkeypatch):
    """SIGKILL at any moment (startup, step, evaluation, checkpoint write) must leave loadable best.pt/last.pt,
    only temp files the next run deletes, a stale lock it takes over, and metrics a resume continues exactly."""
    run_dir, rng = tmp_path / "run", random.Random(20240607)
    args = ["train", corpus_file, *TINY, "--save-every", "1", "--eval-every", "2", "--max-steps", "1000000",
            "--out", run_dir]
    kills, after_save, last_step, mid_save = 0, 0, -1, 0
    for round_ in range(20):
        resume = (run_dir / "last.pt").exists()
        assert resume == (round_ > 0)
        before = file_id(run_dir / "last.pt")
        temps_before = temp_files(run_dir)
        err = tmp_path / f"stderr{round_}.txt"
        with open(err, "wb") as err_file:
            proc = subprocess.Popen(chargen_cmd(*args, *(["--resume"] if resume else [])), cwd=tmp_path, env=ENV,
                                    stdout=subprocess.DEVNULL, stderr=err_file)
        try:
            if round_ > 0 and rng.random() < 0.3:  # early: during import, lock, model set-up or the first steps
                time.sleep(rng.uniform(0.3, 1.4))
                assert proc.poll() is None, err.read_text()
            else:  # after this process has written a checkpoint: mostly inside the next saves
                after_save += 1
                wait_for(lambda before=before: file_id(run_dir / "last.pt") not in (None, before), proc, 60,
                         "a new last.pt", err)
                time.sleep(rng.uniform(0.0, 0.2))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, err.read_text()
            kills += 1
        finally:
            finish(proc)
        assert "Traceback" not in err.read_text()
        steps = check_run_folder(run_dir)
        mid_save += bool(temp_files(run_dir) - temps_before)  # this kill struck inside a checkpoint write
        assert steps.get("last.pt", -1) >= last_step  # a resume never goes back
        last_step = steps.get("last.pt", -1)
    assert kills == 20 and last_step >= after_save >= 10

    records = metrics(run_dir)
    steps = [r["step"] for r in records]
    assert steps == sorted(steps)
    assert sorted(set(steps)) == list(range(2, max(steps) + 1, 2))  # no evaluation lost
    first = {}
    for record in records:  # a step evaluated again after a kill must give exactly the same values
        assert stable(first.setdefault(record["step"], record)) == stable(record)
    assert max(steps) <= last_step + 1

    # A later run takes over the dead process's lock, removes the temp files and continues from last.pt's step.
    interrupt_at(monkeypatch, last_step + 3)
    result = train(corpus_file, ModelConfig(), TrainConfig(max_steps=1), out=run_dir, resume=True,
                   progress=False)
    assert (result.stop_reason, result.steps) == ("interrupted", last_step + 3)
    assert read_checkpoint(run_dir / "last.pt")["step"] == last_step + 3
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.toml", "last.pt", "metrics.jsonl"]
    print(f"\n{kills} kills ({kills - after_save} early, {mid_save} inside a checkpoint write), step {last_step}")


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_stored_step(tmp_path, corpus_file):
    """After a SIGKILL, --resume must start at last.pt's step and reproduce an uninterrupted run's metrics exactly."""
    run_dir = tmp_path / "run"
    args = ["train", corpus_file, *TINY, "--save-every", "1", "--eval-every", "2", "--max-steps", "40",
            "--out", run_dir]
    proc = subprocess.Popen(chargen_cmd(*args), cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (run_dir / "metrics.jsonl").exists()
                 and len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 4, proc, 60, "step 8")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        finish(proc)
    stored = read_checkpoint(resume_checkpoint(run_dir))  # the newer of last.pt and best.pt: where --resume starts
    killed_at, before = stored["step"], metrics(run_dir)
    assert 7 <= killed_at < 40  # step 8 is evaluated just before last.pt reaches 8

    done = subprocess.run(chargen_cmd(*args, "--resume", "--json"), cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["steps"], summary["stop_reason"]) == (40, "max_steps")
    after = metrics(run_dir)[len(before):]
    first_eval = killed_at + 2 - killed_at % 2  # the first even step after the stored one,
    if killed_at % 2 == 0 and killed_at not in [r["step"] for r in before]:  # or the stored one, if its record was lost
        first_eval = killed_at
    assert [r["step"] for r in after] == list(range(first_eval, 41, 2))

    whole = train(corpus_file, ModelConfig(**stored["model_config"]), TrainConfig(**stored["train_config"]),
                  out=tmp_path / "whole", progress=False)
    assert whole.steps == 40
    expected = {r["step"]: stable(r) for r in metrics(tmp_path / "whole")}
    for record in before + after:  # steps evaluated twice (before the kill and after the resume) included
        assert stable(record) == expected[record["step"]], record["step"]


# -- 2. disk full, read-only folder ------------------------------------------------------------------
class Fault:
    """Replace `owner.name` so that its `nth` call fails with errno `err`, after snapshotting the checkpoints."""

    def __init__(self, monkeypatch, owner, name: str, nth: int, err: int, run_dir: Path, partial_write=False):
        self.original, self.calls, self.nth = getattr(owner, name, None) or getattr(builtins, name), 0, nth
        self.err, self.run_dir, self.partial_write, self.before = err, run_dir, partial_write, None
        monkeypatch.setattr(owner, name, self, raising=False)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls != self.nth:
            return self.original(*args, **kwargs)
        self.before = {name: (self.run_dir / name).read_bytes() for name in ("best.pt", "last.pt")}
        if self.partial_write:  # torch.save(obj, f): a full disk fails after some bytes went out
            args[1].write(b"PK\x03\x04 half a checkpoint")
        raise OSError(self.err, os.strerror(self.err))


# (config.toml is written first: one fsync, replace and mkstemp before the checkpoints')
FAULTS = {  # where a failed write can strike: (owner, attribute, nth call, errno, partial write)
    "torch.save": (torch, "save", 3, errno.ENOSPC, True),
    "fsync": (os, "fsync", 4, errno.ENOSPC, False),
    "replace": (os, "replace", 4, errno.ENOSPC, False),
    "mkstemp": (tempfile, "mkstemp", 4, errno.EROFS, False),
    "metrics": (os, "write", 3, errno.ENOSPC, False),  # the lock's holder line, then step 5's record, step 10's
}


@pytest.mark.parametrize("where", list(FAULTS))
def test_failed_write_mid_run_keeps_previous_checkpoints(tmp_path, corpus_file, make_model_config,
                                                         make_train_config, monkeypatch, where):
    """A full disk or read-only folder mid-run must stop with one ChargenError line, keep the checkpoint it
    failed to write as it was, still save last.pt where the disk lets it (the run loses nothing), keep
    every metrics line whole, leave no temp file or lock, and the run must then resume to the end."""
    run_dir = tmp_path / "run"
    owner, name, nth, err, partial = FAULTS[where]
    cfg = make_train_config(max_steps=30, eval_every=5, save_every=5)
    prepare_corpus(corpus_file)  # the cache's own writes would shift the count of calls
    with monkeypatch.context() as m:
        fault = Fault(m, owner, name, nth, err, run_dir, partial)
        with pytest.raises(ChargenError) as raised:
            train(corpus_file, make_model_config(), cfg, out=run_dir, progress=False)
    assert fault.calls >= nth and fault.before is not None
    assert os.strerror(err) in raised.value.message and raised.value.hint
    assert "\n" not in raised.value.message and str(run_dir) in raised.value.message
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.toml", "last.pt", "metrics.jsonl"]
    assert check_run_folder(run_dir)["last.pt"] == 10  # saved after the failure at step 10's evaluation
    best, last = read_checkpoint(run_dir / "best.pt"), read_checkpoint(run_dir / "last.pt")
    assert last["best_val_loss"] == best["best_val_loss"]  # last.pt never claims a best.pt that was not written
    if where != "metrics":  # the failed write was a checkpoint's: the one it struck is the file it was
        assert (run_dir / "best.pt").read_bytes() == fault.before["best.pt"] or best["step"] == 10
    assert [r["step"] for r in metrics(run_dir)] == ([5] if where == "metrics" else [5, 10])
    resumed = train(corpus_file, make_model_config(), cfg, out=run_dir, resume=True, progress=False)
    assert (resumed.stop_reason, resumed.steps) == ("max_steps", 30)
    assert [r["step"] for r in metrics(run_dir)] == [5, 10, 15, 20, 25, 30]  # step 10 evaluated again if lost


@pytest.mark.parametrize("where", ["torch.save", "mkstemp"])
def test_cli_failed_write_is_one_line_exit_1(tmp_path, corpus_file, monkeypatch, where):
    """`chargen train` on a full disk or read-only folder must exit 1 with one 'error: ... (hint: ...)' line."""
    owner, name, nth, err, partial = FAULTS[where]
    prepare_corpus(corpus_file)  # the cache's own writes would shift the count of calls
    Fault(monkeypatch, owner, name, nth, err, tmp_path / "run", partial)
    result = invoke("train", corpus_file, *TINY, "--max-steps", "30", "--eval-every", "5", "--save-every", "5",
                    "--out", tmp_path / "run", "--json")
    line = domain_error_line(result)
    assert line.startswith(f"error: could not write checkpoint {tmp_path / 'run'}")
    hint = "free some disk space or choose a writable --out folder" if err == errno.ENOSPC \
        else "choose a writable --out folder"  # a read-only folder: no disk space would help
    assert os.strerror(err) in line and line.endswith(f"(hint: {hint})")


# -- 3. NaN through the CLI -----------------------------------------------------------------------------
def test_cli_nan_loss_exits_1_with_message(tmp_path, corpus_file, monkeypatch):
    """A loss that stays NaN must end `chargen train` with exit 1 and one line, never a traceback or a NaN best.pt."""
    poisoned = {"on": False}
    original_step, original_forward = Trainer.train_step, CharRNN.forward

    def train_step(self):
        poisoned["on"] = poisoned["on"] or self.state.step >= 5
        return original_step(self)

    def forward(self, x, hidden=None):  # from step 5 on, training and evaluation both see NaN logits
        logits, hidden = original_forward(self, x, hidden)
        return (logits * math.nan if poisoned["on"] else logits), hidden

    monkeypatch.setattr(Trainer, "train_step", train_step)
    monkeypatch.setattr(CharRNN, "forward", forward)
    result = invoke("train", corpus_file, *TINY, "--max-steps", "40", "--eval-every", "2", "--save-every", "2",
                    "--out", tmp_path / "run", "--json")
    line = domain_error_line(result)
    assert line.startswith("error: the loss was not finite for 5 steps in a row at step 10, down to 1/16 of the "
                           "learning rate; the last finite weights are in ")
    assert line.endswith("(hint: lower --lr or --grad-clip)")
    monkeypatch.undo()
    steps = check_run_folder(tmp_path / "run")
    assert steps["last.pt"] == 10 and steps["best.pt"] in (2, 4)
    assert math.isfinite(read_checkpoint(tmp_path / "run" / "best.pt")["best_val_loss"])


# -- 4. hostile and mismatched checkpoints through the CLI -------------------------------------------
class Exploit:
    """Unpickling this runs a shell command: what a hostile "checkpoint" would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
@pytest.mark.parametrize("command", ["sample", "info", "eval"])
def test_cli_refuses_code_in_checkpoint(tmp_path, trained_run, how, command):
    """`chargen sample/info/eval evil.pt` must exit 1 saying 'not a valid chargen checkpoint' and never run its code."""
    marker, evil = tmp_path / "MARKER", tmp_path / "evil.pt"
    payload = {"format_version": 1, "model_config": {}, "vocab": ["a"], "model": Exploit(marker)}
    if how == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload, protocol=2))
    extra = [trained_run.corpus] if command == "eval" else []
    line = domain_error_line(invoke(command, evil, *extra))
    assert line.startswith(f"error: {evil} is not a valid chargen checkpoint: it asks to load ")
    assert "could run code" in line
    assert not marker.exists()


def test_cli_each_checkpoint_problem_has_its_own_message(tmp_path, trained_run):
    """A newer or invalid format version and a vocabulary or weight mismatch must each exit 1 with a distinct line."""
    real = torch.load(trained_run.last, map_location="cpu", weights_only=True)
    cases = {
        "newer": ({**real, "format_version": FORMAT_VERSION + 1}, "newer than this chargen understands"),
        "invalid": ({**real, "format_version": 0}, "invalid format version 0"),
        "vocab": ({**real, "vocab": real["vocab"][1:]}, "inconsistent: its model expects 31 characters but its "
                                                        "vocabulary has 30"),
        "weights": ({**real, "model_config": {**real["model_config"], "hidden_size": 12}},
                    "has weights that do not fit its configuration"),
    }
    seen = set()
    for name, (state, needle) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(state, path)
        for command in ("sample", "info"):
            line = domain_error_line(invoke(command, path, "--length", "5") if command == "sample"
                                     else invoke(command, path))
            assert needle in line, (name, line)
            seen.add(re.sub(r"\(.*", "", line.replace(str(path), "<path>")))
    assert len(seen) == len(cases)


# -- 5. two runs in one folder ------------------------------------------------------------------------
@pytest.mark.slow
def test_second_run_refused_while_first_holds_lock(tmp_path, corpus_file, trained_run):
    """While a run holds the folder, another train (with or without --resume) must exit 1 naming its process id;
    after the holder is killed with SIGKILL its stale lock is taken over."""
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(chargen_cmd("train", corpus_file, *TINY, "--max-steps", "1000000", "--save-every",
                                          "1000000", "--eval-every", "1000000", "--out", run_dir),
                              cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (run_dir / "run.lock").exists() and (run_dir / "run.lock").read_text().strip(), holder,
                 60, "run.lock")
        assert (run_dir / "run.lock").read_text() == f"{socket.gethostname()} {holder.pid}"
        fresh = domain_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "5", "--out", run_dir))
        assert fresh == (f"error: {run_dir} is in use by another chargen run (process {holder.pid}) "
                         "(hint: wait for it to finish, or pass another --out)")
        # Something to resume (the same poem as corpus_file), written by us: the holder never saves.
        shutil.copy(trained_run.last, run_dir / "last.pt")
        resumed = domain_error_line(invoke("train", corpus_file, "--out", run_dir, "--resume"))
        assert resumed == fresh
        assert (run_dir / "run.lock").read_text() == f"{socket.gethostname()} {holder.pid}"
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        finish(holder)
    after = invoke("train", corpus_file, "--out", run_dir, "--resume", "--json")
    assert after.exit_code == 0, after.stderr
    assert (json.loads(after.stdout)["steps"], json.loads(after.stdout)["stop_reason"]) == (60, "max_steps")
    assert not (run_dir / "run.lock").exists()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("content", ["{host} {dead}", "", "{host}", "{host} notapid"])
def test_run_lock_takes_over_stale_lock(tmp_path, content):
    """A lock left by a dead process, or half-written by one killed while writing it, must be taken over."""
    lock = tmp_path / "run.lock"
    lock.write_text(content.format(host=socket.gethostname(), dead=dead_pid()))
    with RunLock(tmp_path):
        assert lock.read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert not lock.exists()


def test_run_lock_refuses_while_held_and_frees_after(tmp_path):
    """A held lock must refuse a second claim naming the holder, and be free again once released."""
    first = RunLock(tmp_path)
    with first:
        with pytest.raises(ChargenError) as err:
            with RunLock(tmp_path):
                pass
        assert err.value.message == f"{tmp_path} is in use by another chargen run (process {os.getpid()})"
        assert (tmp_path / "run.lock").read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert not first.held and not (tmp_path / "run.lock").exists()
    with RunLock(tmp_path) as again:
        assert again.held


def test_run_lock_not_taken_through_an_unlinked_file(tmp_path, monkeypatch):
    """A claim that locks the old file just as its holder unlinks it must retry on the new one, so two runs
    never hold the folder at once."""
    lock = RunLock(tmp_path)
    original = RunLock._still_linked
    calls = []

    def unlinked_once(self, fd):
        calls.append(fd)
        if len(calls) == 1:
            (tmp_path / "run.lock").unlink()  # the previous holder finished between our open and our flock
        return original(self, fd)

    monkeypatch.setattr(RunLock, "_still_linked", unlinked_once)
    with lock:
        assert len(calls) == 2
        assert (tmp_path / "run.lock").read_text() == f"{socket.gethostname()} {os.getpid()}"


class FakeMsvcrt:
    """msvcrt's locking() as Windows does it, on this machine: a non-blocking lock of `nbytes` at the
    file's current position that fails with OSError while another handle holds it. Emulated with
    flock per file description; records the positions locked."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self) -> None:
        import fcntl

        self.fcntl, self.positions = fcntl, []

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        assert nbytes == 1
        self.positions.append(os.lseek(fd, 0, os.SEEK_CUR))
        if mode == self.LK_NBLCK:
            try:
                self.fcntl.flock(fd, self.fcntl.LOCK_EX | self.fcntl.LOCK_NB)
            except BlockingIOError:
                raise OSError(errno.EDEADLK, "Resource deadlock avoided") from None  # what msvcrt raises
        else:
            self.fcntl.flock(fd, self.fcntl.LOCK_UN)


def test_os_locker_is_msvcrt_on_windows(monkeypatch):
    """On Windows (os.name 'nt') the lock must come from msvcrt, never fcntl, which Windows lacks."""
    from chargen.training.runs import _Flock, _Msvcrt, os_locker

    fake = FakeMsvcrt()
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "msvcrt", fake)
        m.setitem(sys.modules, "fcntl", None)  # importing it now would fail, as on Windows
        m.setattr(os, "name", "nt")
        locker = os_locker()
    assert isinstance(locker, _Msvcrt) and locker.msvcrt is fake
    assert isinstance(os_locker(), _Flock)


def test_run_lock_through_the_windows_code_path(tmp_path, monkeypatch):
    """With Windows' lock (msvcrt.locking), a held folder must refuse a second claim naming the holder, whose
    text stays readable (the locked byte lies past it), and be free after release, or after a release where
    Windows refused to delete the open file."""
    from chargen.training.runs import _Msvcrt

    fake = FakeMsvcrt()
    lock_file, me = tmp_path / "run.lock", f"{socket.gethostname()} {os.getpid()}"
    with RunLock(tmp_path, _Msvcrt(fake)) as first:
        assert first.held and lock_file.read_text() == me
        with pytest.raises(ChargenError) as err:
            RunLock(tmp_path, _Msvcrt(fake)).__enter__()
        assert err.value.message == f"{tmp_path} is in use by another chargen run (process {os.getpid()})"
        assert lock_file.read_text() == me
    assert set(fake.positions) == {_Msvcrt.OFFSET} and not lock_file.exists()

    def refuse_open_file(self, missing_ok=False):  # Windows: an open file cannot be deleted
        raise PermissionError(errno.EACCES, "The process cannot access the file")

    with monkeypatch.context() as m:
        m.setattr(Path, "unlink", refuse_open_file)
        with RunLock(tmp_path, _Msvcrt(fake)):
            pass
    assert lock_file.read_text() == me  # left behind, but its lock is free:
    lock_file.write_text("otherhost 99")
    with RunLock(tmp_path, _Msvcrt(fake)) as again:
        assert again.held and lock_file.read_text() == me


# -- 7. Ctrl-C and broken pipes -------------------------------------------------------------------------
@pytest.mark.slow
def test_sigint_during_training_saves_and_exits_130(tmp_path, corpus_file):
    """SIGINT mid-training must save last.pt, release the lock and exit 130 with 'interrupted', no traceback."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(chargen_cmd("train", corpus_file, *TINY, "--max-steps", "1000000", "--eval-every", "2",
                                        "--save-every", "1000", "--out", run_dir),
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    try:
        wait_for(lambda: (run_dir / "metrics.jsonl").exists(), proc, 60, "training to start")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        finish(proc)
    assert proc.returncode == 130, err
    assert (out, err) == ("", "\ninterrupted\n")
    last = read_checkpoint(run_dir / "last.pt")
    assert last["step"] >= 2 and last["step"] >= max(r["step"] for r in metrics(run_dir))
    Checkpoint.from_dict(last).build_model()
    assert not (run_dir / "run.lock").exists()


@pytest.mark.slow
def test_sigint_during_sampling_exits_130_quickly(tmp_path, trained_run):
    """SIGINT while `chargen sample` streams must exit 130 within a second or two, with no traceback."""
    proc = subprocess.Popen(chargen_cmd("sample", trained_run.best, "--length", "10000000", "--seed", "1"),
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready and proc.stdout.read1(1), "no output"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        finish(proc)
    assert proc.returncode == 130
    assert err.decode() == "\ninterrupted\n"
    assert took < 5


@pytest.mark.slow
def test_sample_into_closed_pipe_exits_0_silently(tmp_path, trained_run):
    """`chargen sample | head -c 10` must stop at once with exit 0 and nothing on stderr (no BrokenPipeError)."""
    err = tmp_path / "err.txt"
    cmd = (f"{sys.executable} -m chargen sample {trained_run.best} --length 10000000 --seed 1 2>{err} "
           "| head -c 10; echo \" ${PIPESTATUS[0]}\"")
    done = subprocess.run(["bash", "-c", cmd], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    head, status = done.stdout.rsplit(" ", 1)
    assert (len(head), status) == (10, "0\n")  # 10 million characters would take minutes: it stopped at the pipe
    assert err.read_text() == ""


# -- 8. bounded resources ---------------------------------------------------------------------------------
def test_long_sample_streams_in_constant_memory(trained_run):
    """generate() must not keep what it produced: Python memory flat from 5k to 20k characters, peak under 1 MB."""
    model, vocab, _ = load_model(trained_run.best)
    marks = [0, 0]
    tracemalloc.start()
    try:
        for i, _ in enumerate(generate(model, vocab, SampleConfig(length=20_000, seed=1)), 1):
            if i in (5_000, 20_000):
                marks[i == 20_000] = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert i == 20_000
    assert marks[1] - marks[0] < 4096  # a kept character or tensor per step would add 15k objects
    assert peak < 1 << 20


def test_evaluation_moves_one_chunk_at_a_time(monkeypatch):
    """evaluate_carried must move at most streams x chunk ids to the device per step, and chunking must not
    change the loss."""
    torch.manual_seed(5)
    model = CharRNN(ModelConfig(vocab_size=7, cell="gru", num_layers=1, hidden_size=6, embedding_dim=5))
    ids = torch.randint(7, (16 * 300 + 5,), generator=torch.Generator().manual_seed(3))  # (4805,)
    whole = evaluate_carried(model, ids, torch.device("cpu"), streams=16, chunk=10**9)
    moved, fed = [], []
    original_to, original_forward = torch.Tensor.to, model.forward

    def to(self, *args, **kwargs):
        moved.append(self.numel())
        return original_to(self, *args, **kwargs)

    def forward(x, hidden=None):
        fed.append(tuple(x.shape))
        return original_forward(x, hidden)

    monkeypatch.setattr(torch.Tensor, "to", to)
    monkeypatch.setattr(model, "forward", forward)
    chunked = evaluate_carried(model, ids, torch.device("cpu"), streams=16, chunk=64)
    monkeypatch.undo()
    assert fed == [(16, 64)] * 4 + [(16, 43)]  # 299 scored positions per stream
    assert max(moved) == 16 * 64 and len(moved) == 2 * len(fed)
    assert chunked.chars == whole.chars == 16 * 299
    assert chunked.loss == pytest.approx(whole.loss, rel=1e-6)
