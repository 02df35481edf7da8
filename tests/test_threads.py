"""chargen.threads: the thread count follows the machine (fake step times, so the decisions are
exact and fast), `--threads N` fixes it, and a run says when the count changed."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen.cli.app import app
from chargen.threads import Threads
from chargen.training.trainer import Trainer


class FakeMachine:
    """Step times as a function of the thread count, which the adapter sets through `set`."""

    def __init__(self, times: dict[int, float]) -> None:
        self.times, self.calls = times, []

    def set(self, count: int) -> None:
        self.calls.append(count)

    def run(self, threads: Threads, steps: int) -> list[tuple[int, str]]:
        """Run `steps` steps; the notes returned, with the step (1-based) that returned each."""
        notes = []
        for i in range(1, steps + 1):
            note = threads.step(self.times[threads.count])
            if note:
                notes.append((i, note))
        return notes


def test_busy_machine_drops_to_the_faster_count_and_says_so():
    """Guards against a run stuck at one thread per core while another program holds a core (the
    counters leave 1 core free): after 1 untimed + 4 steps at 2 threads and 4 at 1 thread, it keeps
    1 and says why."""
    machine = FakeMachine({1: 0.10, 2: 0.30})
    threads = Threads(most=2, start=2, window=4, warmup=1, set_threads=machine.set, free=lambda own: 1)
    assert machine.run(threads, 20) == [(9, "threads 2 -> 1 (busy machine)")]
    assert machine.calls == [2, 1] and threads.count == 1 and threads.changes == ["threads 2 -> 1 (busy machine)"]


def test_quiet_machine_keeps_its_count_and_probes_less_often():
    """On a quiet machine the probe of a worse count is undone at once, no note, and the next probe
    waits twice as long each time the count is confirmed (so a long run loses almost nothing). No
    counters here (free returns None, as on macOS): both neighbours are tried."""
    machine = FakeMachine({1: 0.15, 2: 0.10, 3: 0.12})
    threads = Threads(most=3, start=2, window=4, warmup=1, every=10, set_threads=machine.set, free=lambda own: None)
    assert machine.run(threads, 13) == []
    assert machine.calls == [2, 1, 3, 2] and threads.count == 2 and threads.every == 20
    machine.run(threads, 20 + 3 * 4)  # 20 steps settled, then 2, 1 and 3 threads again
    assert machine.calls == [2, 1, 3, 2, 1, 3, 2] and threads.every == 40


def test_quiet_counters_spare_the_probe_of_fewer_threads():
    """Where the counters say no other program is busy, one thread fewer is not tried (on a quiet
    machine eight steps on one thread only cost time, and drifts would start that probe often);
    every 4th scheduled round tries it anyway, in case the counters misread."""
    from chargen.threads import ANYWAY

    machine = FakeMachine({1: 0.15, 2: 0.10})
    threads = Threads(most=2, start=2, window=4, warmup=1, every=10, set_threads=machine.set, free=lambda own: 2)
    assert ANYWAY == 4
    for slow in (0.2, 0.1) * 3:  # 6 drifts: each starts a round, none tries 1 thread
        machine.times[2] = slow
        machine.run(threads, 4 + 4)
    assert machine.calls == [2] and threads.blocked == 1  # the first round (scheduled) only
    machine.run(threads, 3 * (10 + 4) + 4)  # scheduled rounds 2, 3 and 4: the 4th tries 1 thread
    assert machine.calls == [2, 1, 2] and threads.count == 2 and threads.blocked == 4


def test_a_far_slower_neighbour_is_dropped_at_once():
    """A probe of a count whose first step is over 2x slower ends there (a 2-thread probe on a busy
    machine is the costly one), and the first 3 steps of a run are not timed."""
    machine = FakeMachine({1: 0.10, 2: 0.30})
    threads = Threads(most=2, start=1, window=8, every=1000, set_threads=machine.set, free=lambda own: 8)
    machine.run(threads, 3 + 8)
    assert machine.calls == [1, 2] and threads.count == 2 and not threads.settled
    assert machine.run(threads, 1) == [] and machine.calls == [1, 2, 1] and threads.settled == 0.10


def test_no_probe_of_one_more_thread_without_a_free_core():
    """At 1 thread of 2, with the load average saying the other core is busy, no 2-thread probe
    (a step there can take ten times longer); once it says a core is free, the probe comes."""
    machine = FakeMachine({1: 0.10, 2: 0.05})
    free = [1]
    threads = Threads(most=2, start=1, window=4, warmup=1, every=10, set_threads=machine.set,
                      free=lambda own: free[0])
    machine.run(threads, 1 + 4 + 10 + 4 + 5)  # nothing to probe: settled at once, rounds every 10 steps
    assert machine.calls == [1] and threads.count == 1 and threads.every == 10
    free[0] = 2
    assert machine.run(threads, 5 + 4 + 4) == [(13, "threads 1 -> 2 (more free cores)")]
    assert machine.calls == [1, 2]


def test_one_more_thread_is_tried_every_fourth_round_whatever_the_counters_say():
    """Counters that wrongly call the other core busy (a quiet machine read as busy) keep a run on
    1 thread for at most 4 rounds: the 4th tries 2 threads anyway, and keeps them when faster."""
    from chargen.threads import ANYWAY

    machine = FakeMachine({1: 0.10, 2: 0.05})
    threads = Threads(most=2, start=1, window=4, warmup=1, every=10, set_threads=machine.set, free=lambda own: 1)
    assert ANYWAY == 4
    machine.run(threads, 1 + 4 + 2 * (10 + 4))  # rounds end at steps 5, 19 and 33: no probe
    assert machine.calls == [1] and threads.blocked == 3
    assert machine.run(threads, 10 + 4 + 4) == [(18, "threads 1 -> 2 (more free cores)")]
    assert machine.calls == [1, 2] and threads.count == 2


def test_drifts_beside_a_busy_program_force_no_probe():
    """Beside a busy program the steps drift often, and each drift starts a round: those rounds do not
    count towards the forced probe of one more thread, which only every 4th scheduled round makes."""
    machine = FakeMachine({1: 0.10, 2: 0.30})
    threads = Threads(most=2, start=1, window=4, warmup=1, every=1000, set_threads=machine.set, free=lambda own: 1)
    machine.run(threads, 1 + 4)  # the first round (scheduled): blocked 1, settled at 1 thread
    for slow in (0.2, 0.1) * 4:  # 8 drifts: the steps jump to twice as slow and back, a round each time
        machine.times[1] = slow
        machine.run(threads, 4 + 4)
    assert machine.calls == [1] and threads.blocked == 1 and threads.count == 1


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux's /proc/stat")
def test_a_niced_busy_program_leaves_its_core_free():
    """A busy loop at `nice -n 19` yields its core to this process, so it is not counted as busy
    (two threads beside one ran 1.3-1.5x faster than one); at normal priority it is."""
    from chargen.threads import busy_elsewhere

    before = busy_elsewhere(0.5)
    assert before is not None
    if before > 0.3:  # the readings below count every other program too, so they need a quiet machine
        pytest.skip(f"other programs keep {before:.1f} cores busy")
    readings = {}
    for label, cmd in (("niced", ["nice", "-n", "19"]), ("normal", [])):
        spin = subprocess.Popen([*cmd, sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.3)
            readings[label] = busy_elsewhere(0.5)
        finally:
            spin.kill()
            spin.wait()
    assert readings["niced"] is not None and readings["normal"] is not None
    assert readings["niced"] < 0.4 < 0.6 < readings["normal"], readings


def test_a_gain_within_the_margin_does_not_switch():
    """Hysteresis: one thread fewer 2% faster (noise, for a 3% margin) keeps the count."""
    machine = FakeMachine({1: 0.098, 2: 0.100})
    threads = Threads(most=2, start=2, window=4, warmup=1, set_threads=machine.set, free=lambda own: None)
    assert machine.run(threads, 20) == [] and threads.count == 2 and machine.calls == [2, 1, 2]


def test_a_drift_reprobes_at_once():
    """Settled at 2 threads, the steps become 3x slower (another program starts and the counters see
    it): within a window it probes again, long before the scheduled probe, and moves to 1 thread."""
    machine = FakeMachine({1: 0.15, 2: 0.10})
    free = [2]
    threads = Threads(most=2, start=2, window=4, warmup=1, every=1000, set_threads=machine.set,
                      free=lambda own: free[0])
    machine.run(threads, 12)
    assert threads.count == 2 and threads.settled == 0.10 and machine.calls == [2]
    machine.times, free[0] = {1: 0.12, 2: 0.30}, 1
    # 2 slow steps make the window's median slow (half of it), then 4 at 2 threads and 4 at 1
    # thread: the note comes at the 10th slow step, not after the 1000 scheduled.
    assert machine.run(threads, 10) == [(10, "threads 2 -> 1 (busy machine)")]
    assert threads.count == 1


def test_fixed_count_is_set_once_and_kept():
    """--threads N: set once, never probed, whatever the step times."""
    machine = FakeMachine({1: 9.0, 2: 0.1, 3: 0.1})
    threads = Threads(fixed=1, most=3, window=2, set_threads=machine.set, free=lambda own: 8)
    assert machine.run(threads, 50) == [] and machine.calls == [1] and threads.count == 1


def test_cli_threads_1_is_applied_and_reported(tmp_path, monkeypatch):
    """`chargen train --threads 1` runs every step on one thread, says so in its summary, and gives
    the process its own count back afterwards (2 here)."""
    corpus = tmp_path / "poem.txt"
    corpus.write_text("Twinkle, twinkle, little star,\nHow I wonder what you are!\n" * 20, encoding="utf-8")
    seen, step = [], Trainer.train_step

    def counting_step(self):
        seen.append(torch.get_num_threads())
        return step(self)

    monkeypatch.setattr(Trainer, "train_step", counting_step)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = CliRunner().invoke(app, ["train", str(corpus), "--threads", "1", "--max-steps", "3", "--hidden-size",
                                          "8", "--embedding-dim", "4", "--num-layers", "1", "--batch-size", "3",
                                          "--seq-len", "10", "--device", "cpu",
                                          "--out", str(tmp_path / "run"), "--json", "--quiet"])
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["threads"] == "1 (fixed)"
    assert seen == [1, 1, 1] and after == 2


def test_start_leaves_out_the_cores_the_load_average_says_are_busy(monkeypatch):
    """Where the system has no CPU counters: on 2 CPUs with a load average of 0.8 (another program),
    an adaptive run starts on 1 thread, not on torch's 2 (which a busy core makes several times
    slower); at 0.7 (a few idle programs) on 2."""
    monkeypatch.setattr("chargen.threads.cpu_threads", lambda: 2)
    monkeypatch.setattr("chargen.threads.busy_elsewhere", lambda: None)
    machine = FakeMachine({})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr("chargen.threads.os.getloadavg", lambda: (0.8, 1.0, 1.0))
        assert Threads(set_threads=machine.set).count == 1
        monkeypatch.setattr("chargen.threads.os.getloadavg", lambda: (0.7, 0.0, 0.0))
        assert Threads(set_threads=machine.set).count == 2
    finally:
        torch.set_num_threads(before)
    assert machine.calls == [1, 2]


@pytest.mark.slow  # two threads on a busy 2-core machine can take half a minute here
def test_losses_do_not_depend_on_the_thread_count(tmp_path, corpus_file, make_model_config, make_train_config):
    """Training is the same run whatever the thread count (so an adaptive change keeps it
    reproducible): a GRU and an RNN give bit-identical losses at 1 and 2 threads."""
    from chargen import train

    for cell in ("gru", "rnn"):
        runs = []
        for threads in (1, 2):
            result = train(corpus_file, make_model_config(cell=cell), make_train_config(max_steps=10, threads=threads),
                           out=tmp_path / f"{cell}-{threads}", progress=False)
            assert result.threads == f"{threads} (fixed)"
            runs.append([(r["step"], r["train_loss"], r["val_loss"]) for r in result.history])
        assert runs[0] == runs[1] and len(runs[0]) == 1


def test_cli_sample_and_eval_take_threads(trained_run):
    """`eval --threads 1` scores as `eval` does (the loss does not depend on the count), `sample
    --threads 1` gives the same text as without, and a negative count is exit 1 with the hint."""
    best, corpus = str(trained_run.run_dir / "best.pt"), str(trained_run.corpus)
    runner = CliRunner()
    before = torch.get_num_threads()
    try:
        scores = [runner.invoke(app, ["eval", best, corpus, "--json", *flag]) for flag in ([], ["--threads", "1"])]
        texts = [runner.invoke(app, ["sample", best, "--length", "40", "--seed", "3", "--num-samples", "2", *flag])
                 for flag in ([], ["--threads", "1"])]
        bad = runner.invoke(app, ["eval", best, corpus, "--threads", "-1"])
    finally:
        torch.set_num_threads(before)
    assert [r.exit_code for r in scores + texts] == [0, 0, 0, 0]
    assert json.loads(scores[0].stdout)["loss"] == json.loads(scores[1].stdout)["loss"]
    assert texts[0].stdout == texts[1].stdout and len(texts[0].stdout) > 40
    assert bad.exit_code == 1
    assert bad.stderr.splitlines() == [("error: threads must be an integer from 0 to 4096, got -1 (hint: pass "
                                        "--threads 0 to follow the machine, or a count of threads)")]


def test_start_follows_the_cores_busy_now_not_the_trailing_load_average(monkeypatch):
    """With CPU counters, what other programs use now decides: a load average still high from a job
    that just ended does not start a quiet machine on fewer threads, and a program busy now does."""
    monkeypatch.setattr("chargen.threads.cpu_threads", lambda: 2)
    monkeypatch.setattr("chargen.threads.os.getloadavg", lambda: (1.9, 1.9, 1.9))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr("chargen.threads.busy_elsewhere", lambda: 0.1)
        assert Threads(set_threads=lambda n: None).count == 2
        monkeypatch.setattr("chargen.threads.busy_elsewhere", lambda: 0.9)
        assert Threads(set_threads=lambda n: None).count == 1
    finally:
        torch.set_num_threads(before)


def test_recent_free_cores_read_the_steps_own_stretch(monkeypatch):
    """RecentFreeCores compares the oldest and newest of the readings taken at the last steps: over
    1 s of 2 CPUs, 200 ticks busy of which this process's 1 CPU-second is 100, another program held
    1 core, so 1 of 2 is free; readings less than 0.1 s apart fall back to a fresh measurement."""
    import os

    from chargen import threads as t

    hz = os.sysconf("SC_CLK_TCK")
    monkeypatch.setattr("chargen.threads.cpu_threads", lambda: 2)
    monkeypatch.setattr("chargen.threads.os.cpu_count", lambda: 2)
    readings = iter([(10.0, 0, 0, 5.0), (10.5, hz, hz, 5.5), (11.0, 2 * hz, 2 * hz, 6.0)])
    monkeypatch.setattr(t, "_counters", lambda: next(readings))
    recent = t.RecentFreeCores(keep=2)
    for _ in range(3):
        recent.mark()
    assert [r[0] for r in recent.readings] == [10.5, 11.0]  # the oldest dropped
    assert t._busy_between(*recent.readings) == pytest.approx(1.0)
    assert recent(2) == 1
    close = t.RecentFreeCores(keep=9)
    close.readings.extend([(1.0, 0, 0, 0.0), (1.05, 0, 0, 0.0)])
    monkeypatch.setattr(t, "busy_elsewhere", lambda: None)
    assert close(2) is None  # too short a stretch, and no counters to measure afresh


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux's /proc/stat")
def test_busy_elsewhere_sees_a_busy_program_and_not_this_ones_own_work():
    """A busy loop in another process shows as about one core; a busy thread of this process does not."""
    from chargen.threads import busy_elsewhere

    quiet = busy_elsewhere(0.3)
    stop = threading.Event()

    def spin_here() -> None:
        while not stop.is_set():
            pass

    spinner = threading.Thread(target=spin_here)
    spinner.start()
    try:
        own = busy_elsewhere(0.3)
    finally:
        stop.set()
        spinner.join()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start
        other = busy_elsewhere(0.5)
    finally:
        spin.kill()
        spin.wait()
    assert quiet is not None and own is not None and other is not None
    assert own - quiet < 0.4 and other - quiet > 0.6, (quiet, own, other)
