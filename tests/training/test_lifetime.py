"""Nothing lost, whatever the user does (issue 24): a closed pipe, two runs into one folder,
Ctrl-C during a save (once or twice), a full disk, a folder deleted or misnamed, a run killed
before its first last.pt. Each through the entry point the user meets.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import chargen.training.loop
from chargen import read_checkpoint
from chargen.cli import app
from chargen.data.cache import prepare_corpus
from chargen.study.plot import read_metrics
from chargen.training.trainer import Trainer

runner = CliRunner()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
TINY = ["--hidden-size", "8", "--embedding-dim", "4", "--num-layers", "1", "--batch-size", "2", "--seq-len", "8",
        "--max-time", "0", "--device", "cpu", "--threads", "1"]  # one thread: runs compared bit for bit


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def chargen_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "chargen", *map(str, args)]


def default_sigint() -> None:
    """For a child process: Python's own Ctrl-C handling, even when the tests run where SIGINT is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_works():
    """Python's Ctrl-C handler in this process for the test (a background job starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(hint: " in lines[0], result.stderr
    return lines[0]


def metric_steps(run_dir: Path) -> list[int]:
    text = (run_dir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line)["step"] for line in text.splitlines()]


# -- 1. a closed output ------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_into_a_pipe_closed_early_trains_to_the_end_and_saves(tmp_path, corpus_file):
    """`chargen train ... 2>&1 | head`: once the reader is gone the run must go on to --max-steps, save
    best.pt and last.pt, and exit 0 (it used to stop at the next evaluation, exit 0, without last.pt)."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(chargen_cmd("train", corpus_file, *TINY, "--max-steps", "40", "--eval-every", "5",
                                        "--sample-chars", "20", "--out", run_dir),
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=default_sigint)
    try:
        first = proc.stdout.readline()  # the first evaluation's line: the run has started writing
        proc.stdout.close()  # `head` has what it wanted and goes away
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first.startswith(b"step 5 ")
    assert read_checkpoint(run_dir / "last.pt")["step"] == 40
    assert read_checkpoint(run_dir / "best.pt")["step"] <= 40
    assert metric_steps(run_dir) == list(range(5, 41, 5))


@pytest.mark.slow
def test_train_json_into_dev_full_trains_saves_and_then_says_so(tmp_path, corpus_file):
    """`chargen train --json > /dev/full`: the run finishes and saves, then one line says the summary was lost."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(chargen_cmd("train", corpus_file, *TINY, "--max-steps", "6", "--eval-every", "3",
                                          "--out", tmp_path / "run", "--json"),
                              cwd=tmp_path, env=ENV, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (1, "error: could not write the summary to stdout: No space left on "
                                                 "device (hint: the run is saved; free some disk space, or send the "
                                                 "output to another file)\n")
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 6


# -- 2. two runs into one folder ---------------------------------------------------------------------
def test_a_run_that_finished_while_another_was_starting_is_not_overwritten(tmp_path, corpus_file, trained_run,
                                                                           monkeypatch):
    """A second run into the same --out that is still reading its corpus when the first saves must,
    once it holds the lock, refuse (exit 1) and leave the first run's files byte for byte."""
    run_dir = tmp_path / "run"
    load = chargen.training.loop.load_for_run

    def first_run_finishes_meanwhile(*args, **kwargs):
        corpus = load(*args, **kwargs)
        run_dir.mkdir()
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            shutil.copy(trained_run.run_dir / name, run_dir / name)
        return corpus

    monkeypatch.setattr(chargen.training.loop, "load_for_run", first_run_finishes_meanwhile)
    line = one_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "5", "--out", run_dir, "-q"))
    assert line == (f"error: {run_dir} already holds a run: another run saved there while this one was starting "
                    "(hint: add --resume to continue it, or pass another --out folder)")
    for name in ("best.pt", "last.pt", "metrics.jsonl"):
        assert (run_dir / name).read_bytes() == (trained_run.run_dir / name).read_bytes()
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "last.pt", "metrics.jsonl"]


def test_a_resume_refuses_a_run_that_another_resume_moved_on(tmp_path, corpus_file, trained_run, monkeypatch):
    """Two --resume of one run: the one that takes the lock second must not continue from the stale state."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run_dir)
    load = chargen.training.loop.load_for_run

    def other_resume_saves_meanwhile(*args, **kwargs):
        corpus = load(*args, **kwargs)
        shutil.copy(trained_run.last, run_dir / "new.pt")
        os.replace(run_dir / "new.pt", run_dir / "last.pt")  # as a save does: a new file where last.pt was
        return corpus

    monkeypatch.setattr(chargen.training.loop, "load_for_run", other_resume_saves_meanwhile)
    line = one_error_line(invoke("train", corpus_file, "--out", run_dir, "--resume", "--max-steps", "70", "-q"))
    assert line == (f"error: {run_dir} changed while this run was starting: another run saved there "
                    "(hint: run the same command again to continue from its newest checkpoint)")
    assert read_checkpoint(run_dir / "last.pt")["step"] == 60  # not continued to 70 from the state read before
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [20, 40, 60]


# -- 4. Ctrl-C during a save ---------------------------------------------------------------------------
class CtrlCInsideSave:
    """torch.save that receives SIGINT `times` times from inside its third write (where torch turned
    the KeyboardInterrupt into a RuntimeError), on the save at `step`."""

    def __init__(self, monkeypatch, step: int, times: int = 1):
        self.original, self.step, self.times, self.sent, self.writes = torch.save, step, times, 0, 0
        monkeypatch.setattr(torch, "save", self)

    def __call__(self, state, f, *args, **kwargs):
        if state.get("step") != self.step or self.sent:
            return self.original(state, f, *args, **kwargs)
        test = self

        class Interrupted:
            def write(self, data):
                test.writes += 1
                while test.writes == 3 and test.sent < test.times:
                    test.sent += 1
                    os.kill(os.getpid(), signal.SIGINT)
                return f.write(data)

            def flush(self):
                f.flush()

        return self.original(state, Interrupted(), *args, **kwargs)


def test_ctrl_c_while_last_pt_is_written_finishes_the_save_and_exits_130(tmp_path, corpus_file, monkeypatch,
                                                                        ctrl_c_works):
    """Ctrl-C inside a checkpoint write used to end in a traceback and exit 1 with last.pt not updated:
    the write must complete, then the run stops as interrupted with last.pt at that step."""
    ctrl_c = CtrlCInsideSave(monkeypatch, step=10)
    result = invoke("train", corpus_file, *TINY, "--max-steps", "1000", "--eval-every", "1000", "--save-every", "10",
                    "--out", tmp_path / "run", "-q")
    assert (result.exit_code, result.stderr) == (130, "\ninterrupted\n"), result.exception
    assert ctrl_c.sent == 1
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 10
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.toml", "last.pt"]


def test_a_second_ctrl_c_during_the_final_save_keeps_it(tmp_path, corpus_file, monkeypatch, ctrl_c_works,
                                                        interrupt_at):
    """Ctrl-C, then Ctrl-C twice more while the run saves last.pt on its way out, used to leave the run
    folder empty: last.pt must be written whole, and the exit is 130."""
    interrupt_at(monkeypatch, 7)  # the first Ctrl-C, before any checkpoint
    ctrl_c = CtrlCInsideSave(monkeypatch, step=7, times=2)
    result = invoke("train", corpus_file, *TINY, "--max-steps", "1000", "--eval-every", "1000", "--out",
                    tmp_path / "run", "-q")
    assert (result.exit_code, result.stderr) == (130, "\ninterrupted\n"), result.exception
    assert ctrl_c.sent == 2
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 7


# -- 5. a full disk ----------------------------------------------------------------------------------
def test_a_metrics_record_cut_by_a_full_disk_is_taken_back_and_last_pt_saved(tmp_path, corpus_file, monkeypatch):
    """The disk fills in the middle of step 10's metrics line: the file must end at step 5's line (no half
    line), last.pt must hold step 10 (the run had none yet), and the error is one line, exit 1."""
    write = os.write

    def half_then_full(fd, data):
        if bytes(data).startswith(b'{"step": 10,'):
            write(fd, bytes(data)[:len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data)

    monkeypatch.setattr(os, "write", half_then_full)
    run_dir = tmp_path / "run"
    line = one_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "30", "--eval-every", "5",
                                 "--out", run_dir, "-q"))
    monkeypatch.undo()
    assert line == (f"error: could not write {run_dir / 'metrics.jsonl'}: No space left on device "
                    "(hint: free some disk space or choose a writable --out folder)")
    assert metric_steps(run_dir) == [5]
    assert read_checkpoint(run_dir / "last.pt")["step"] == 10


def test_a_checkpoint_write_that_meets_a_full_disk_is_one_line(tmp_path, corpus_file, monkeypatch):
    """torch.save reports a failed write as a RuntimeError: a full disk mid-checkpoint must still be
    one line and exit 1, with the earlier best.pt intact."""
    fdopen = os.fdopen

    class FullAfter:
        def __init__(self, f, room):
            self.f, self.room = f, room

        def write(self, data):
            if len(data) > self.room:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    opened = []

    def full_on_the_third(fd, *args, **kwargs):  # of the checkpoints (config.toml is opened first)
        opened.append(fd)
        f = fdopen(fd, *args, **kwargs)
        return FullAfter(f, 1000) if len(opened) == 4 else f

    prepare_corpus(corpus_file)  # the cache's own files are written with os.fdopen too
    monkeypatch.setattr(chargen.modelfile.checkpoint.os, "fdopen", full_on_the_third)
    run_dir = tmp_path / "run"
    line = one_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "30", "--eval-every", "5",
                                 "--out", run_dir, "-q"))
    monkeypatch.undo()
    assert line.startswith(f"error: could not write checkpoint {run_dir}/")
    assert line.endswith(": No space left on device (hint: free some disk space or choose a writable --out folder)")
    assert read_checkpoint(run_dir / "best.pt")["step"] in (5, 10)
    assert read_checkpoint(run_dir / "last.pt")["step"] == 10  # the last try after the failure found room


def test_a_torn_last_line_of_an_older_run_is_read_past_and_cut_before_the_next(tmp_path):
    """An older run left half a line at the end of metrics.jsonl: readers must skip it, and the next
    append must cut it rather than glue a record to it."""
    from chargen.training.metrics_log import append_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5, "val_loss": 2.5}\n{"step": 10, "val_lo')
    assert read_metrics(tmp_path) == [{"step": 5, "val_loss": 2.5}]
    append_metrics(tmp_path, {"step": 10, "val_loss": 2.25})
    assert path.read_text() == '{"step": 5, "val_loss": 2.5}\n{"step": 10, "val_loss": 2.25}\n'


@pytest.mark.slow
def test_a_real_full_disk_keeps_every_file_readable(tmp_path, corpus_file):
    """On a tiny tmpfs that fills up mid-run: exit 1 with one line naming the full disk, every metrics line
    whole, best.pt and last.pt loadable (skipped where a tmpfs cannot be mounted)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        run_dir = disk / "run"
        line = one_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "100000", "--eval-every", "1",
                                     "--sample-chars", "1000", "--out", run_dir, "-q"))
        assert "No space left on device (hint: free some disk space or choose a writable --out folder)" in line
        steps = metric_steps(run_dir)  # every line whole
        assert steps == list(range(1, len(steps) + 1))
        assert read_checkpoint(run_dir / "last.pt")["step"] > 0 and read_checkpoint(run_dir / "best.pt")["step"] > 0
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.slow
def test_sample_into_dev_full_is_one_line_and_exit_1(tmp_path, trained_run):
    """`chargen sample --length 100 > /dev/full` used to end in a traceback."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(chargen_cmd("sample", trained_run.best, "--length", "100", "--seed", "1"),
                              cwd=tmp_path, env=ENV, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (1, "error: could not write the output to stdout: No space left on "
                                                 "device (hint: free some disk space, or send the output to another "
                                                 "file)\n")


# -- 17. messages that name the real problem -------------------------------------------------------------
def test_out_below_a_regular_file_says_so(tmp_path, corpus_file):
    (tmp_path / "notes.txt").write_text("mine")
    line = one_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "2", "--out",
                                 tmp_path / "notes.txt" / "run"))
    assert line == (f"error: cannot create run folder {tmp_path / 'notes.txt' / 'run'}: it is inside "
                    f"{tmp_path / 'notes.txt'}, which is a file, not a folder "
                    "(hint: pass as --out a folder, or a path where one can be made)")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_run_folder_deleted_mid_run_says_it_vanished(tmp_path, corpus_file, monkeypatch):
    run_dir = tmp_path / "run"
    save = Trainer.save

    def deleted_at_step_10(self, name):
        if (name, self.state.step) == ("last.pt", 10):
            shutil.rmtree(run_dir, ignore_errors=True)  # the last try to save comes here again
        return save(self, name)

    monkeypatch.setattr(Trainer, "save", deleted_at_step_10)
    line = one_error_line(invoke("train", corpus_file, *TINY, "--max-steps", "30", "--eval-every", "5",
                                 "--out", run_dir, "-q"))
    assert line == (f"error: could not write checkpoint {run_dir / 'last.pt'}: the folder {run_dir} vanished "
                    "(deleted or moved while this was writing it) (hint: put the folder back, or run again into "
                    "another --out folder)")


def test_a_damaged_last_pt_hints_at_best_pt(tmp_path, trained_run):
    shutil.copytree(trained_run.run_dir, tmp_path / "run")
    last = tmp_path / "run" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    line = one_error_line(invoke("info", last))
    assert line.endswith(f"(hint: use {tmp_path / 'run' / 'best.pt'} instead (to --resume from it, move this "
                         "file aside))")


# -- 18. a run killed before its first last.pt -----------------------------------------------------------
class Killed(BaseException):
    """What SIGKILL does to a run: nothing after it runs (no final save)."""


def test_a_run_killed_before_its_first_last_pt_resumes_from_best_pt(tmp_path, corpus_file, monkeypatch):
    run_dir = tmp_path / "run"
    save = Trainer.save

    def killed_before_last_pt(self, name):
        if name == "last.pt":
            raise Killed
        return save(self, name)

    monkeypatch.setattr(Trainer, "save", killed_before_last_pt)
    try:
        killed = invoke("train", corpus_file, *TINY, "--max-steps", "20", "--eval-every", "5", "--out", run_dir, "-q")
        assert isinstance(killed.exception, Killed)
    except Killed:
        pass
    monkeypatch.undo()
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.toml", "metrics.jsonl"]
    result = invoke("train", corpus_file, "--out", run_dir, "--resume", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 20
    assert metric_steps(run_dir) == [5, 10, 15, 20]


def test_last_pt_is_written_at_every_evaluation(tmp_path, corpus_file, monkeypatch):
    saved, save = [], Trainer.save

    def record(self, name):
        saved.append((name, self.state.step))
        return save(self, name)

    monkeypatch.setattr(Trainer, "save", record)
    result = invoke("train", corpus_file, *TINY, "--max-steps", "12", "--eval-every", "5", "--save-every", "1000",
                    "--out", tmp_path / "run", "-q")
    assert result.exit_code == 0, result.stderr
    assert [s for s in saved if s[0] == "last.pt"] == [("last.pt", 5), ("last.pt", 10), ("last.pt", 12)]


def test_ctrl_c_inside_an_evaluation_is_evaluated_again_on_resume(tmp_path, corpus_file, monkeypatch):
    """Ctrl-C while step 10 was being evaluated saved last.pt at step 10 without its record, and the resume
    went on from there: the record of step 10 was lost for good. The resume must evaluate step 10 first."""
    import chargen.training.trainer

    draw, run_dir = chargen.training.trainer.draw_sample, tmp_path / "run"

    def ctrl_c_at_step_10(*args, **kwargs):  # each evaluation draws one sample: the second is step 10's
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return draw(*args, **kwargs)

    calls: list[int] = []
    monkeypatch.setattr(chargen.training.trainer, "draw_sample", ctrl_c_at_step_10)
    first = invoke("train", corpus_file, *TINY, "--max-steps", "20", "--eval-every", "5", "--out", run_dir, "-q")
    assert first.exit_code == 130 and read_checkpoint(run_dir / "last.pt")["step"] == 10
    assert metric_steps(run_dir) == [5]
    monkeypatch.undo()
    again = invoke("train", corpus_file, "--out", run_dir, "--resume", "-q")
    assert again.exit_code == 0, again.stderr
    assert metric_steps(run_dir) == [5, 10, 15, 20]
    whole = tmp_path / "whole"
    assert invoke("train", corpus_file, *TINY, "--max-steps", "20", "--eval-every", "5", "--out", whole,
                  "-q").exit_code == 0
    volatile = ("elapsed", "chars_per_s", "train_loss", "grad_norm")  # the step's own figures died with it
    same = [{k: v for k, v in json.loads(line).items() if k not in volatile}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert same == [{k: v for k, v in json.loads(line).items() if k not in volatile}
                    for line in (whole / "metrics.jsonl").read_text().splitlines()]

