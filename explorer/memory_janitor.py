"""Give freed memory back to the operating system while the app server runs (issue 17: RSS only ever grew).

A closed session's objects sit in reference cycles until a full garbage collection, and glibc keeps freed blocks
for reuse (explorer.device.keep_freed_memory). Streamlit's own answer, a full collection after every script run
(runner.postScriptGC), cost more than the rerun itself with torch and two models loaded, and a burst of slider
changes paid it once per change (issue 17, item 7), so .streamlit/config.toml turns it off and this thread takes
over: it calls explorer.device.release_freed_memory when the server has worked since the last release and is
quiet now, or when it has been busy without a pause for ``busy_period_s``. An idle server costs nothing.

The first release also freezes what survived it (``gc.freeze``): by then the server has imported torch,
transformers, plotly and Streamlit and loaded a model, some 400,000 objects that live as long as the process. A full
collection walks every tracked object, and holds the GIL while it does: 250 ms with SmolLM2 loaded, every page of
the class stalled for it. Frozen objects are skipped by every later collection, the janitor's and Python's own
(a few ms). The price is bounded and paid once: cyclic garbage of the few objects alive at that moment that die
later (the first visitor's page) is never collected.
"""
from __future__ import annotations

import gc
import os
import threading
import time
from dataclasses import dataclass, field

from .device import release_freed_memory

TICK_S = 10.0  # how often the thread looks
BUSY_PERIOD_S = 120.0  # the longest a busy server goes without a release
MIN_WORK_S = 1.0  # CPU seconds of work since the last release that make one worth it (about twice its cost)
QUIET_SHARE = 0.25  # a tick that used less than this share of one CPU is quiet


@dataclass
class Decision:
    """When to release: a pure function of CPU-time readings, so it is tested without threads or clocks."""

    tick_s: float = TICK_S
    busy_period_s: float = BUSY_PERIOD_S
    min_work_s: float = MIN_WORK_S
    quiet_share: float = QUIET_SHARE
    last_release_cpu: float = 0.0
    last_release_at: float = 0.0
    last_tick_cpu: float = 0.0
    releases: int = field(default=0)

    def due(self, cpu: float, now: float) -> bool:
        """``cpu``: the process's CPU seconds so far; ``now``: a monotonic clock. Records the tick."""
        worked = cpu - self.last_release_cpu >= self.min_work_s
        quiet = cpu - self.last_tick_cpu < self.quiet_share * self.tick_s
        overdue = now - self.last_release_at >= self.busy_period_s
        self.last_tick_cpu = cpu
        return worked and (quiet or overdue)

    def released(self, cpu: float, now: float) -> None:
        """After a release: its own CPU time is not work that calls for another."""
        self.last_release_cpu = self.last_tick_cpu = cpu
        self.last_release_at = now
        self.releases += 1


class MemoryJanitor(threading.Thread):
    def __init__(self, decision: Decision | None = None):
        super().__init__(name="explorer-memory-janitor", daemon=True)
        self.decision = decision or Decision()
        self.stopped = threading.Event()

    def run(self) -> None:
        d = self.decision
        d.released(_cpu_seconds(), time.monotonic())  # start counting from now
        while not self.stopped.wait(d.tick_s):
            if d.due(_cpu_seconds(), time.monotonic()):
                release(first=d.releases == 0)
                d.released(_cpu_seconds(), time.monotonic())


def release(first: bool) -> None:
    """One release (explorer.device.release_freed_memory); the first also freezes what survived it (module doc)."""
    release_freed_memory()
    if first:
        gc.freeze()


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


_janitor: MemoryJanitor | None = None
_lock = threading.Lock()


def start_memory_janitor() -> bool:
    """Start the process's janitor thread once; later calls do nothing. Returns whether it runs."""
    global _janitor
    with _lock:
        if _janitor is None:
            _janitor = MemoryJanitor()
            _janitor.start()
        return _janitor.is_alive()
