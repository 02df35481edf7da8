"""How many CPU threads a loop of like steps (training, evaluation, sampling many streams) runs
with: a fixed count, or one that follows what the machine gives now, from the steps' own times.

It owns the choice and the call to torch.set_num_threads; it knows nothing of what a step does.
"""
from __future__ import annotations

import os
import statistics
import time
from collections import deque
from collections.abc import Callable

import torch

from .errors import ChargenError


MOST_THREADS = 4096  # the largest count --threads takes


def check_threads(count: object) -> None:
    """ChargenError unless `count` is a thread count a user may ask for (0 = follow the machine)."""
    if not isinstance(count, int) or not 0 <= count <= MOST_THREADS:
        raise ChargenError(f"threads must be an integer from 0 to {MOST_THREADS}, got {count!r}",
                           "pass --threads 0 to follow the machine, or a count of threads")


def cpu_threads() -> int:
    """The CPUs this process may run on (its affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_elsewhere(interval: float = 0.1) -> float | None:
    """How many cores other programs kept busy over the next `interval` seconds, from the kernel's
    CPU counters (/proc/stat) less this process's own CPU time; None where there are none (macOS,
    Windows). A now-figure: the load average trails by a minute, and right after another job ends
    it would still call the machine busy."""
    before = _counters()
    if before is None:
        return None
    time.sleep(interval)
    after = _counters()
    return None if after is None else _busy_between(before, after)


Counters = tuple[float, int, int, float]  # wall seconds, busy ticks, all ticks, this process's CPU seconds


def _counters() -> Counters | None:
    """The kernel's cumulative CPU counters now (all CPUs together); None where there are none."""
    # Programs running at a lower priority (nice) yield their cores to this one when it wants them:
    # two threads beside a `nice -n 19` busy loop ran 1.3-1.5x faster than one (benchmarks/README.md).
    # Their time counts only when this process is niced too, when its own time is in the same column.
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
        idle = ticks[3] + ticks[4] + (ticks[1] if _niceness() <= 0 else 0)
    except (OSError, ValueError, IndexError):
        return None
    own = os.times()
    return time.perf_counter(), sum(ticks) - idle, sum(ticks), own.user + own.system


def _busy_between(before: Counters, after: Counters) -> float | None:
    """Cores that other programs kept busy between two readings of _counters."""
    try:
        hz = os.sysconf("SC_CLK_TCK")
    except (ValueError, AttributeError, OSError):
        return None
    if after[2] <= before[2]:
        return None
    others = after[1] - before[1] - (after[3] - before[3]) * hz  # ticks, all CPUs together
    return max(0.0, others / (after[2] - before[2]) * (os.cpu_count() or 1))


def _niceness() -> int:
    """This process's nice value (0 where the system has none to read)."""
    try:
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (AttributeError, OSError):
        return 0


def free_cores(own: int = 0, busy: float | None = None) -> int:
    """The cores other programs leave free: this process's CPUs less those busy elsewhere (`busy`
    when given, else busy_elsewhere now; where the system has no such counters, the one-minute load
    average, a count of running threads, the `own` threads of this process taken out), at least 1.
    A core counts as busy from 0.75 of a running thread: an editor or a browser idling at a few
    percent takes none."""
    now = busy_elsewhere() if busy is None else busy
    if now is None:
        try:
            now = max(0.0, os.getloadavg()[0] - own)
        except (AttributeError, OSError):  # no load average on this system: assume a quiet machine
            now = 0.0
    busy = int(now + 0.25)
    return max(1, min(cpu_threads(), cpu_threads() - busy))


class RecentFreeCores:
    """free_cores over the last few steps of a loop: the kernel's counters are read at each step
    (`mark`, no wait), and a call compares the oldest reading kept with the newest. So a round of
    Threads sees what other programs did while the steps it times ran, at no cost in time. None
    where the system has no counters."""

    def __init__(self, keep: int) -> None:
        self.readings: deque[Counters] = deque(maxlen=max(2, keep))

    def mark(self) -> None:
        if (now := _counters()) is not None:
            self.readings.append(now)

    def __call__(self, own: int) -> int | None:
        busy = None
        # A tenth of a second at least: the counters tick 100 times a second on most kernels.
        if len(self.readings) >= 2 and self.readings[-1][0] - self.readings[0][0] >= 0.1:
            busy = _busy_between(self.readings[0], self.readings[-1])
        if busy is None:
            busy = busy_elsewhere()
        return None if busy is None else free_cores(own, busy)


ANYWAY = 4  # Threads tries a neighbour every this many scheduled rounds, whatever the kernel's counters say


class Threads:
    """Times steps and keeps the thread count whose steps are fastest, adapting during a run.

    `fixed` > 0 sets that count once and never changes it. Otherwise it starts at `start` (when
    None: torch's default, or fewer where other programs keep cores busy: free_cores). After
    `window` steps at a count (the loop's first `warmup` steps not counted) it tries its neighbours
    where `free` (the cores other programs left free over the last steps: RecentFreeCores) says one
    may be faster: one thread fewer when fewer cores were free than it runs threads, one more when
    more were; both where the system has no counters (free returns None), and both every ANYWAY-th
    scheduled round whatever the counters say. It keeps a neighbour only if
    its median step is faster by more than `margin` (hysteresis: noise does not make it flip). A
    neighbour is dropped at its first step if that is 2x slower, at its third if all three are
    1.5x slower: a busy core can make a second thread ten times slower, so that probe stays short.
    It probes again after `every` steps (doubling while probes confirm the count, up to
    `most_every`), or at once when the median drifts by more than `drift` from the one it settled
    on: another program started or stopped.
    A busy core stalls every thread waiting for the one on it, which is why fewer threads can be
    faster: a second thread on a core shared with another program only adds waits.
    """

    def __init__(self, fixed: int = 0, most: int | None = None, start: int | None = None, window: int = 8,
                 warmup: int = 3, every: int = 200, most_every: int = 3200, drift: float = 0.2, margin: float = 0.03,
                 set_threads: Callable[[int], None] | None = None,
                 free: Callable[[int], int | None] | None = None) -> None:
        check_threads(fixed)
        self.fixed, self.window, self.drift, self.margin = fixed, window, drift, margin
        self.every, self.first_every, self.most_every = every, every, most_every
        self.most = max(1, most or cpu_threads())
        self.recent = RecentFreeCores(window + 1) if free is None and not fixed else None
        self.set_threads, self.free = set_threads or torch.set_num_threads, free or self.recent or free_cores
        self.before = torch.get_num_threads()  # the process's count, given back by `restore`
        self.count = fixed or min(self.most, max(1, start or min(torch.get_num_threads(), free_cores(0))))
        self.set_threads(self.count)
        self.times: list[float] = []  # step times at the count being measured
        self.skip = warmup  # steps left to ignore: the first ones allocate memory and choose kernels
        self.medians: dict[int, float] = {}  # this probe round's median per count
        self.queue: list[int] = []  # counts still to try in this round
        self.home = self.count  # the count this round started from
        self.settled = 0.0  # the median the current count settled on (0: not yet)
        self.since = 0  # steps since the count settled
        self.changes: list[str] = []  # "threads 2 -> 1 (busy machine)", in order
        self.blocked = 0  # scheduled rounds in a row in which the counters ruled out a neighbour
        self.scheduled = True  # whether the round under way came on schedule (not from a drift)

    def step(self, seconds: float) -> str | None:
        """Record one step's time; returns a line for a person when the chosen count changed."""
        if self.fixed:
            return None
        if self.recent is not None:
            self.recent.mark()
        if self.skip:
            self.skip -= 1
            return None
        self.times.append(seconds)
        if self.settled:
            self._watch()
            return None
        # A neighbour far slower than the count the round started from is known in a few steps:
        # on a busy machine that probe is the expensive one, so it ends early.
        home = self.medians.get(self.home) if self.medians else None
        clearly_worse = home is not None and (min(self.times) > 2 * home or
                                              (len(self.times) >= 3 and min(self.times) > 1.5 * home))
        if len(self.times) < self.window and not clearly_worse:
            return None
        return self._measured(statistics.median(self.times))

    @classmethod
    def for_loop(cls, fixed: int, adapt: bool) -> Threads:
        """`fixed` threads when > 0; else adaptive where `adapt`, else the count torch has now, kept."""
        return cls(fixed or (0 if adapt else torch.get_num_threads()))

    def summary(self) -> str:
        """'1 (fixed)', '2 (adaptive)' or '1 (adaptive: 2 -> 1 busy machine)' for a run's summary."""
        if self.fixed:
            return f"{self.count} (fixed)"
        changes = ", ".join(c.removeprefix("threads ").replace(" (", " ").rstrip(")") for c in self.changes)
        return f"{self.count} (adaptive{': ' + changes if changes else ''})"

    def restore(self) -> None:
        """Give the process its thread count back: a library call leaves no global change behind."""
        torch.set_num_threads(self.before)

    def _watch(self) -> None:
        """Settled: probe again when it is time, or when the steps drift from the settled speed."""
        self.since += 1
        recent = self.times[-self.window:]
        drifted = len(recent) == self.window and abs(statistics.median(recent) / self.settled - 1) > self.drift
        if drifted:
            self.every = self.first_every
        if drifted or self.since >= self.every:
            self.settled, self.medians, self.scheduled = 0.0, {}, not drifted
            self._switch(self.count)

    def _measured(self, median: float) -> str | None:
        """One count measured: try the next neighbour, or settle on the fastest of this round."""
        if not self.medians:  # the round starts at the current count
            self.queue = self._neighbours()
            self.home = self.count
        self.medians[self.count] = median
        if self.queue:
            self._switch(self.queue.pop(0))
            return None
        home = self.medians[self.home]
        best = min(self.medians, key=lambda c: self.medians[c])
        chosen = best if self.medians[best] < home * (1 - self.margin) else self.home
        # A count confirmed against a neighbour is probed less and less often; with no neighbour to
        # try (one core, or the counters ruled them out), the next round only reads the counters: no cost.
        tried = len(self.medians) > 1
        if chosen != self.home or not tried:
            self.every = self.first_every
        else:
            self.every = min(2 * self.every, self.most_every)
        note = None
        if chosen != self.home:
            note = f"threads {self.home} -> {chosen} ({'busy machine' if chosen < self.home else 'more free cores'})"
            self.changes.append(note)
        self._switch(chosen)
        self.settled, self.since = self.medians[chosen], 0
        return note

    def _neighbours(self) -> list[int]:
        """The counts this round tries besides the current one.

        Only those the kernel's counters say may be faster: a probe costs steps. One thread more on
        a core another program holds makes a step several times slower, and one thread fewer on a
        quiet machine makes eight steps a fifth to a half slower, which drifts in a shared
        machine's speed would start often. But every ANYWAY-th scheduled round tries both anyway:
        counters may misread (a program that only just stopped, time a hypervisor took), and a run
        must not stay on the wrong count for good. Rounds that a drift started do not count: beside
        a busy program the steps drift often, and each fourth of those rounds would make the
        costly probe."""
        wanted = [c for c in (self.count - 1, self.count + 1) if 1 <= c <= self.most]
        free = self.free(self.count)
        if free is None:  # no counters: try both
            return wanted
        chosen = [c for c in wanted if (c < self.count and free < self.count) or (c > self.count and free > self.count)]
        if chosen == wanted:
            self.blocked = 0
        elif self.scheduled:
            self.blocked += 1
            if self.blocked % ANYWAY == 0:
                return wanted
        return chosen

    def _switch(self, count: int) -> None:
        if count != self.count:
            self.count = count
            self.set_threads(count)
        self.times = []
