"""Interactive work first: a slider change must answer while the server decodes, trains or runs a load of others.

On a classroom server the CPU is shared by two kinds of work. Interactive work (a page's forward pass after a
slider moved) is short and a student waits for it; background work (the batched generation engine, a training run)
is long and is measured in tokens per second, so a pause of a few hundred milliseconds costs it little. The
background loops call :func:`yield_to_interactive` between their steps; the pages wrap their heavy computing in
:func:`interactive`. While any interactive section runs, background loops wait before their next step (never for
more than ``max_wait_s``, so a busy class can slow generation and training but never stop them).

    with priority.interactive():          # in a page's cached compute
        result = run_the_forward_pass()

    for step in loop:                     # in a background loop
        priority.yield_to_interactive()
        do_one_step()

One gate per process on purpose: it is the process's CPU that is being shared.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

DEFAULT_MAX_WAIT_S = 1.0  # a background step waits at most this long: a slider burst cannot starve generation


class PriorityGate:
    """Counts running interactive sections; background steps wait while there is one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def interactive(self) -> Iterator[None]:
        with self._cond:
            self._active += 1
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                if self._active == 0:
                    self._cond.notify_all()

    def yield_to_interactive(self, max_wait_s: float = DEFAULT_MAX_WAIT_S) -> float:
        """Wait while interactive work runs, at most ``max_wait_s`` seconds; the seconds waited."""
        start = time.monotonic()
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0, timeout=max(0.0, max_wait_s))
        return time.monotonic() - start


GATE = PriorityGate()
interactive = GATE.interactive
yield_to_interactive = GATE.yield_to_interactive
