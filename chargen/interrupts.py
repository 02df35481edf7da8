"""Holding Ctrl-C back while a run's file is written, so that an interrupt (or two) never
leaves a checkpoint or a metrics line half-written: the KeyboardInterrupt comes once the
write is complete. It decides nothing about what a run does when interrupted; loop.py does.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the body with SIGINT deferred: any number of Ctrl-Cs during it raise one
    KeyboardInterrupt after it has finished (not if it raised an error of its own).

    Only where Python's own Ctrl-C handler is in place on the main thread; elsewhere (another
    thread, SIGINT ignored, a caller's handler, an outer interrupts_held) the body runs as it is.
    """
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
