"""Long work (a training run) in a background thread per session job, so a page only ever reads its state.

A page starts a job and returns at once; every rerun (a fragment that reruns each second) draws what the job has
done so far. The student can pause, resume and stop it; an exception inside it is kept as the job's error and
never reaches the server. The server runs at most ``training_capacity()`` jobs at once (one core is left to the
interactive pages, see explorer.admission for why more at once is slower for everyone); the others wait in line
and are told their place.

    job = Job(trainer.steps, total=settings.steps).start()
    job.pause(); job.resume(); job.stop()
    job.state, job.place(), job.progress, job.history(), job.error

A paused job gives its slot back (a paused training uses no core, and holding the slot would make the others wait
for a student who went for coffee); resuming joins the line again, at its end.

A closed tab stops its job: the page calls ``detach(grace_s)`` when Streamlit releases the session (its
session-scoped resources are released on a disconnect) and ``attach()`` on every rerun. A job left detached for
``grace_s`` stops itself, so a tab that is gone frees its slot, while a classroom Wi-Fi blip (the browser
reconnects to the same session within seconds) does not cost a student their run. ``stop_when_collected`` is the
backstop: when the session's state is garbage collected (explorer.memory_janitor), the job stops.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Callable, Generic, Iterable, Iterator, TypeVar

from . import priority
from .admission import AdmissionQueue, Ticket

T = TypeVar("T")
LOG = logging.getLogger(__name__)

WAITING, RUNNING, PAUSED, DONE, STOPPED, FAILED = "waiting", "running", "paused", "done", "stopped", "failed"
FINISHED = frozenset({DONE, STOPPED, FAILED})
POLL_S = 0.1  # how often a waiting or paused job looks for a stop, a resume or its slot: a click answers this fast
KEEP_STEPS = 4096  # steps kept per job; beyond it every other older step goes (the curve keeps its shape)
KEEP_PINNED = 256  # steps kept for their own sake (a checkpoint's sample and attention), thinned the same way


def training_capacity(cores: int | None = None) -> int:
    """How many trainings may run at once: ``EXPLORER_MAX_TRAININGS``, else all cores but one, at least one."""
    env = os.environ.get("EXPLORER_MAX_TRAININGS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass  # a malformed setting must not take the server down: fall back to the computed default
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


_queue: AdmissionQueue | None = None
_queue_lock = threading.Lock()


def training_queue() -> AdmissionQueue:
    """The process's one line for trainings (every session's jobs share it), made on first use."""
    global _queue
    with _queue_lock:
        if _queue is None:
            _queue = AdmissionQueue(training_capacity())
        return _queue


def _thin(items: list, limit: int) -> list:
    """Every other item, from the oldest, until at most ``limit`` are left; the newest is always kept."""
    while len(items) > limit:
        items = items[:-1][::2] + items[-1:]
    return items


class Job(Generic[T]):
    """One background run of ``steps()`` (called in the job's thread), expected to yield ``total`` items.

    ``pinned(step)``: steps worth keeping apart from the thinned history (a training's checkpoints), whole;
    ``light(step)``: what the history keeps of every step (a checkpoint's attention maps are large: the history of
    thousands of steps keeps their numbers only). Thread-safe: every method may be called from any thread (a page's
    script run, a fragment, a test).
    """

    def __init__(self, steps: Callable[[], Iterable[T]], total: int, *, queue: AdmissionQueue | None = None,
                 pinned: Callable[[T], bool] | None = None, light: Callable[[T], T] | None = None,
                 keep: int = KEEP_STEPS, keep_pinned: int = KEEP_PINNED, name: str = "job"):
        if total < 0:
            raise ValueError(f"total must be at least 0 (got {total}).")
        self.total = total
        self.name = name
        self._steps_factory = steps
        self._queue = queue if queue is not None else training_queue()
        self._pinned = pinned or (lambda step: False)
        self._light = light or (lambda step: step)
        self._keep, self._keep_pinned = max(2, keep), max(2, keep_pinned)
        self._cond = threading.Condition()
        self._state = WAITING
        self._count = 0
        self._history: list[T] = []
        self._checkpoints: list[T] = []
        self._latest: T | None = None
        self._error: BaseException | None = None
        self._pause = self._stop = False
        self._detached_at: float | None = None
        self._grace_s = 0.0
        self._ticket: Ticket | None = None
        self._thread = threading.Thread(target=self._run, name=f"explorer-{name}", daemon=True)
        self.started_at: float | None = None
        self.finished_at: float | None = None

    # ---- what a page reads ------------------------------------------------------------------------------------

    @property
    def state(self) -> str:
        with self._cond:
            return self._state

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def error(self) -> BaseException | None:
        with self._cond:
            return self._error

    @property
    def progress(self) -> tuple[int, int]:
        """(steps done, steps expected)."""
        with self._cond:
            return self._count, self.total

    @property
    def fraction(self) -> float:
        done, total = self.progress
        return 1.0 if total == 0 else min(1.0, done / total)

    def place(self) -> int:
        """0 unless waiting for a slot; then 1 when next in line, 2 when one job waits before it, ..."""
        with self._cond:
            ticket, state = self._ticket, self._state
        if state != WAITING or ticket is None or ticket.admitted or ticket.left:
            return 0
        return ticket.ahead() + 1

    def running_jobs(self) -> int:
        """How many jobs of this job's line hold a slot now (for "n trainings are running")."""
        return self._queue.running

    def history(self) -> list[T]:
        """The steps so far as ``light`` keeps them (older ones thinned past ``keep``), oldest first."""
        with self._cond:
            return list(self._history)

    def checkpoints(self) -> list[T]:
        """The pinned steps so far, oldest first."""
        with self._cond:
            return list(self._checkpoints)

    @property
    def latest(self) -> T | None:
        with self._cond:
            return self._latest

    # ---- what a student does ----------------------------------------------------------------------------------

    def start(self) -> "Job[T]":
        with self._cond:
            if self.started_at is not None:
                raise RuntimeError("This job was started already; make a new one.")
            self.started_at = time.monotonic()
            self._ticket = self._queue.join()
        self._thread.start()
        return self

    def pause(self) -> None:
        """No step starts after the one in progress; the slot is given back."""
        with self._cond:
            if self._state not in FINISHED:
                self._pause = True
                self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._pause = False
            self._cond.notify_all()

    def stop(self) -> None:
        """End the job after the step in progress (a job waiting in line leaves the line at once)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
            ticket = self._ticket if self._state == WAITING else None
        if ticket is not None:
            ticket.leave()  # the jobs behind it move up now, not at the thread's next look

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True when it has."""
        if self.started_at is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_for(self, predicate: Callable[["Job[T]"], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (checked at every change of the job); False after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, POLL_S))
            return True

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- the owner's tab ---------------------------------------------------------------------------------------

    def detach(self, grace_s: float) -> None:
        """The page that owns the job may be gone: stop unless ``attach`` is called within ``grace_s`` seconds."""
        with self._cond:
            if self._detached_at is None:
                self._detached_at, self._grace_s = time.monotonic(), max(0.0, grace_s)
            self._cond.notify_all()

    def attach(self) -> None:
        """The owner's page is there (called on each of its reruns)."""
        with self._cond:
            self._detached_at = None

    def _abandoned(self) -> bool:  # caller holds the lock
        return self._detached_at is not None and time.monotonic() - self._detached_at >= self._grace_s

    # ---- the thread ---------------------------------------------------------------------------------------------

    def _set(self, state: str) -> None:  # caller holds the lock
        self._state = state
        self._cond.notify_all()

    def _quit(self) -> bool:  # caller holds the lock
        if self._abandoned():
            self._stop = True
        return self._stop

    def _wait_for_slot(self) -> bool:
        """Wait in line (the ticket is already in it); False when stopped meanwhile."""
        ticket = self._ticket
        while True:
            with self._cond:
                if self._quit():
                    return False
            try:
                if ticket.wait(POLL_S):
                    break
            except RuntimeError:
                if ticket.left:  # stop() took it out of the line between our look and the wait
                    return False
                raise
        with self._cond:
            if self._quit():
                return False
            self._set(PAUSED if self._pause else RUNNING)
        return True

    def _wait_for_resume(self) -> bool:
        """Paused: the slot goes back; on resume, join the line again. False when stopped meanwhile."""
        self._ticket.leave()
        with self._cond:
            self._set(PAUSED)
            while self._pause and not self._quit():
                self._cond.wait(POLL_S)
            if self._stop:
                return False
            self._ticket = self._queue.join()
            self._set(WAITING)
        return self._wait_for_slot()

    def _record(self, step: T) -> None:
        with self._cond:
            self._count += 1
            self._latest = step
            self._history.append(self._light(step))
            if len(self._history) > self._keep:
                self._history = _thin(self._history, self._keep // 2)
            if self._pinned(step):
                self._checkpoints.append(step)
                if len(self._checkpoints) > self._keep_pinned:
                    self._checkpoints = _thin(self._checkpoints, self._keep_pinned // 2)
            self._cond.notify_all()

    def _run(self) -> None:
        steps: Iterator[T] | None = None
        end = STOPPED
        try:
            if not self._wait_for_slot():
                return
            steps = iter(self._steps_factory())
            while True:
                with self._cond:
                    if self._quit():
                        return
                    pause = self._pause
                if pause:
                    if not self._wait_for_resume():
                        return
                    continue
                priority.yield_to_interactive()  # a student's slider answers before the next step
                try:
                    step = next(steps)
                except StopIteration:
                    end = DONE
                    return
                self._record(step)
        except Exception as e:  # noqa: BLE001 -- kept for the page to show; the server must go on
            LOG.exception("background %s failed", self.name)
            with self._cond:
                self._error = e
            end = FAILED
        finally:
            if steps is not None and hasattr(steps, "close"):
                try:
                    steps.close()
                except Exception:  # noqa: BLE001 -- closing a failed generator may fail again; nothing to keep
                    LOG.debug("closing the steps of %s failed", self.name, exc_info=True)
            if self._ticket is not None:
                self._ticket.leave()
            with self._cond:
                self.finished_at = time.monotonic()
                self._set(end)


def stop_when_collected(owner: object, job: Job) -> None:
    """Stop ``job`` when ``owner`` (the session's state that holds it) is garbage collected. The job's thread
    holds the job, never the owner, so a closed session's state can go; and the hook holds the job weakly, so a
    finished job (its model, its optimiser's state) is not kept alive by it."""
    weakref.finalize(owner, _stop_if_alive, weakref.ref(job))


def _stop_if_alive(ref: "weakref.ref[Job]") -> None:
    job = ref()
    if job is not None:
        job.stop()
