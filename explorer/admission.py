"""A fair first-come-first-served admission queue for heavy work shared by many sessions (generation runs).

On a 2-core classroom server, thirty decodes at once do not finish sooner than a few at a time: decoding is bound
by reading the weights, and every extra thread only steals time from the others and from the interactive pages
(total generation fell from 19 to 11 tokens/s with 30 concurrent users, and an attention-lab rerun took 5x longer).
So at most ``capacity`` runs hold a slot; the rest wait in line and can be told their place.

    queue = AdmissionQueue(capacity=1)
    with queue.join() as ticket:           # leaving the block (normally, by an exception, or a stop) frees the place
        while not ticket.wait(0.25):
            show(f"{ticket.ahead()} ahead of you")
        run_the_work()

Thread-safe; a ticket that is abandoned (its ``leave`` never called) is the caller's bug, so ``join`` is meant to
be used as a context manager.
"""
from __future__ import annotations

import os
import threading
from collections import deque


def default_capacity(cores: int | None = None) -> int:
    """How many heavy runs may go at once: one core is left to the interactive pages, at least one run goes.

    ``EXPLORER_MAX_GENERATIONS`` overrides it (a bigger server, a GPU)."""
    env = os.environ.get("EXPLORER_MAX_GENERATIONS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass  # a malformed setting must not take the server down: fall back to the computed default
    cores = cores if cores is not None else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else (os.cpu_count() or 1)
    return max(1, cores - 1)


class Ticket:
    """One caller's place: waiting until admitted, then holding a slot until it leaves."""

    def __init__(self, queue: "AdmissionQueue"):
        self._queue = queue
        self.admitted = False
        self.left = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until admitted or ``timeout`` seconds pass; True once admitted."""
        return self._queue._wait(self, timeout)

    def ahead(self) -> int:
        """How many callers wait before this one (0 when admitted or first in line)."""
        return self._queue._ahead(self)

    def leave(self) -> None:
        """Give the slot back, or the place in line; safe to call twice."""
        self._queue._leave(self)

    def __enter__(self) -> "Ticket":
        return self

    def __exit__(self, *exc) -> None:
        self.leave()


class AdmissionQueue:
    """At most ``capacity`` tickets admitted at once, the others served strictly in arrival order."""

    def __init__(self, capacity: int | None = None):
        self.capacity = default_capacity() if capacity is None else capacity
        if self.capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {self.capacity}).")
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running: set[Ticket] = set()

    def join(self) -> Ticket:
        ticket = Ticket(self)
        with self._cond:
            self._waiting.append(ticket)
            self._admit()
        return ticket

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def _admit(self) -> None:  # caller holds the lock
        while self._waiting and len(self._running) < self.capacity:
            ticket = self._waiting.popleft()
            ticket.admitted = True
            self._running.add(ticket)
        self._cond.notify_all()

    def _wait(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._cond:
            if ticket.left:
                raise RuntimeError("This ticket already left the queue; join again.")
            self._cond.wait_for(lambda: ticket.admitted, timeout)
            return ticket.admitted

    def _ahead(self, ticket: Ticket) -> int:
        with self._cond:
            if ticket.admitted or ticket.left:
                return 0
            return self._waiting.index(ticket)

    def _leave(self, ticket: Ticket) -> None:
        with self._cond:
            if ticket.left:
                return
            ticket.left = True
            if ticket.admitted:
                self._running.discard(ticket)
            else:
                self._waiting.remove(ticket)
            self._admit()
