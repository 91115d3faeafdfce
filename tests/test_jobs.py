"""The background runner of long work (explorer.jobs): pause, resume, stop, the line for slots, errors, a closed tab,
and two sessions' jobs that share nothing. Steps are plain counters with a short sleep, so each test takes well
under a second and nothing depends on the CPU's speed: every wait is on a state change, with a generous timeout."""
from __future__ import annotations

import gc
import threading
import time

import pytest

from explorer.admission import AdmissionQueue
from explorer.jobs import DONE, FAILED, PAUSED, RUNNING, STOPPED, WAITING, Job, stop_when_collected, \
    training_capacity

TIMEOUT = 10.0  # seconds for a state change that takes milliseconds; only a hung thread gets near it


def counting(n: int, delay: float = 0.005, log: list | None = None, closed: threading.Event | None = None):
    """A step factory: yields 0..n-1 with ``delay`` between steps, noting each step and its own close."""
    def steps():
        try:
            for i in range(n):
                time.sleep(delay)
                if log is not None:
                    log.append(i)
                yield i
        finally:
            if closed is not None:
                closed.set()
    return steps


def state_is(*states):
    return lambda job: job.state in states


def test_a_job_runs_to_the_end_and_keeps_its_steps():
    job = Job(counting(20), total=20, queue=AdmissionQueue(1)).start()
    assert job.join(TIMEOUT)
    assert job.state == DONE and job.progress == (20, 20) and job.fraction == 1.0
    assert job.history() == list(range(20)) and job.latest == 19 and job.error is None


def test_pause_really_pauses_and_resume_continues():
    log: list[int] = []
    job = Job(counting(10_000, log=log), total=10_000, queue=AdmissionQueue(1)).start()
    assert job.wait_for(lambda j: j.progress[0] >= 5, TIMEOUT)
    job.pause()
    assert job.wait_for(state_is(PAUSED), TIMEOUT)
    done, computed = job.progress[0], len(log)
    time.sleep(0.3)  # 60 steps' time at 5 ms a step
    assert job.progress[0] == done and len(log) == computed, "steps advanced while paused"
    assert job.state == PAUSED
    job.resume()
    assert job.wait_for(lambda j: j.progress[0] >= done + 10, TIMEOUT)
    assert job.history() == list(range(len(job.history()))), "resume continues where it paused, skipping nothing"
    job.stop()
    assert job.join(TIMEOUT)


def test_stop_ends_the_thread_and_closes_the_steps():
    closed = threading.Event()
    job = Job(counting(10_000, closed=closed), total=10_000, queue=AdmissionQueue(1)).start()
    assert job.wait_for(state_is(RUNNING), TIMEOUT)
    job.stop()
    assert job.join(TIMEOUT) and not job.alive
    assert job.state == STOPPED and closed.is_set()
    assert job.progress[0] < 10_000


def test_a_paused_job_can_be_stopped():
    queue = AdmissionQueue(1)
    job = Job(counting(10_000), total=10_000, queue=queue).start()
    job.pause()
    assert job.wait_for(state_is(PAUSED), TIMEOUT)
    assert queue.running == 0, "a paused job holds no slot"
    job.stop()
    assert job.join(TIMEOUT) and job.state == STOPPED


def test_the_line_serves_in_order_shows_places_and_respects_capacity():
    queue = AdmissionQueue(2)
    jobs = [Job(counting(10_000), total=10_000, queue=queue).start() for _ in range(5)]
    assert all(j.wait_for(state_is(RUNNING), TIMEOUT) for j in jobs[:2])
    assert [j.state for j in jobs[2:]] == [WAITING] * 3
    assert [j.place() for j in jobs] == [0, 0, 1, 2, 3]
    assert queue.running == 2
    time.sleep(0.1)
    assert all(j.progress[0] == 0 for j in jobs[2:]), "a waiting job computed a step"
    jobs[0].stop()
    assert jobs[2].wait_for(state_is(RUNNING), TIMEOUT)
    assert [j.place() for j in jobs[3:]] == [1, 2] and queue.running == 2
    for j in jobs:
        j.stop()
    assert all(j.join(TIMEOUT) for j in jobs)
    assert queue.running == 0 and queue.waiting == 0


def test_stopping_a_waiting_job_takes_it_out_of_the_line_at_once():
    queue = AdmissionQueue(1)
    first = Job(counting(10_000), total=10_000, queue=queue).start()
    second, third = (Job(counting(10), total=10, queue=queue).start() for _ in range(2))
    assert (second.place(), third.place()) == (1, 2)
    second.stop()
    assert third.place() == 1 and queue.waiting == 1  # at once: not at the waiting thread's next look
    assert second.join(TIMEOUT) and second.state == STOPPED and second.progress[0] == 0
    first.stop()
    assert third.join(TIMEOUT) and third.state == DONE


def test_resuming_joins_the_line_again_behind_those_who_waited():
    queue = AdmissionQueue(1)
    first = Job(counting(10_000), total=10_000, queue=queue).start()
    assert first.wait_for(state_is(RUNNING), TIMEOUT)
    second = Job(counting(10_000), total=10_000, queue=queue).start()
    first.pause()
    assert second.wait_for(state_is(RUNNING), TIMEOUT), "a pause gives the slot to the next in line"
    first.resume()
    assert first.wait_for(state_is(WAITING), TIMEOUT) and first.place() == 1
    second.stop()
    assert first.wait_for(state_is(RUNNING), TIMEOUT)
    first.stop()
    assert first.join(TIMEOUT) and second.join(TIMEOUT)


@pytest.mark.parametrize("where", ["first step", "later step", "making the steps"])
def test_an_exception_is_kept_as_the_error_and_frees_the_slot(where):
    queue = AdmissionQueue(1)

    def steps():
        if where == "making the steps":
            raise ValueError("no corpus")
        yield 1
        if where == "later step":
            yield 2
        raise ZeroDivisionError("diverged")

    job = Job(steps if where != "making the steps" else steps, total=5, queue=queue).start()
    assert job.join(TIMEOUT)
    assert job.state == FAILED
    assert isinstance(job.error, ValueError if where == "making the steps" else ZeroDivisionError)
    assert queue.running == 0
    after = Job(counting(3), total=3, queue=queue).start()
    assert after.join(TIMEOUT) and after.state == DONE


def test_two_sessions_jobs_are_independent():
    queue = AdmissionQueue(2)
    a_log: list[int] = []
    b_log: list[int] = []
    a = Job(counting(10_000, log=a_log), total=10_000, queue=queue).start()
    b = Job(counting(30, log=b_log), total=30, queue=queue).start()
    a.pause()
    assert a.wait_for(state_is(PAUSED), TIMEOUT)
    assert b.join(TIMEOUT) and b.state == DONE and b.history() == list(range(30)), "b went on while a paused"
    assert a.state == PAUSED and a.history() == a_log and a.history() is not b.history()
    a.stop()
    assert a.join(TIMEOUT) and a.state == STOPPED and b.state == DONE


def test_history_is_bounded_and_pinned_steps_are_kept_apart():
    job = Job(counting(1000, delay=0), total=1000, queue=AdmissionQueue(1), keep=64, keep_pinned=16,
              pinned=lambda i: i % 100 == 0).start()
    assert job.join(TIMEOUT)
    history = job.history()
    assert len(history) <= 64 and history[0] == 0 and history[-1] == 999
    assert history == sorted(history) and job.progress == (1000, 1000)
    assert job.checkpoints() == list(range(0, 1000, 100))


def test_a_detached_job_stops_after_its_grace_unless_attached_again():
    kept = Job(counting(10_000), total=10_000, queue=AdmissionQueue(1)).start()
    kept.detach(grace_s=0.3)
    kept.attach()  # the tab came back (a Wi-Fi blip)
    gone = Job(counting(10_000), total=10_000, queue=AdmissionQueue(1)).start()
    gone.detach(grace_s=0.3)
    assert gone.join(TIMEOUT) and gone.state == STOPPED
    assert kept.state == RUNNING
    kept.stop()
    assert kept.join(TIMEOUT)


def test_a_waiting_detached_job_leaves_the_line():
    queue = AdmissionQueue(1)
    first = Job(counting(10_000), total=10_000, queue=queue).start()
    waiting = Job(counting(10), total=10, queue=queue).start()
    waiting.detach(grace_s=0.0)
    assert waiting.join(TIMEOUT) and waiting.state == STOPPED and queue.waiting == 0
    first.stop()
    assert first.join(TIMEOUT)


def test_a_collected_owner_stops_its_job():
    class SessionState:  # stands for the session's state that Streamlit drops when the session ends
        pass

    owner = SessionState()
    job = Job(counting(10_000), total=10_000, queue=AdmissionQueue(1)).start()
    owner.job = job
    stop_when_collected(owner, job)
    assert job.wait_for(state_is(RUNNING), TIMEOUT)
    del owner
    gc.collect()
    assert job.join(TIMEOUT) and job.state == STOPPED


def test_capacity_comes_from_the_environment_or_the_cores(monkeypatch):
    monkeypatch.delenv("EXPLORER_MAX_TRAININGS", raising=False)
    assert [training_capacity(c) for c in (1, 2, 16)] == [1, 1, 15]
    monkeypatch.setenv("EXPLORER_MAX_TRAININGS", "3")
    assert training_capacity(2) == 3
    monkeypatch.setenv("EXPLORER_MAX_TRAININGS", "0")
    assert training_capacity(8) == 1
    monkeypatch.setenv("EXPLORER_MAX_TRAININGS", "many")
    assert training_capacity(8) == 7


def test_the_history_keeps_light_steps_and_the_checkpoints_whole():
    def steps():
        for i in range(10):
            yield {"step": i, "heavy": [0.0] * 1000 if i % 5 == 0 else None}

    job = Job(steps, total=10, queue=AdmissionQueue(1), pinned=lambda s: s["heavy"] is not None,
              light=lambda s: {**s, "heavy": None}).start()
    assert job.join(TIMEOUT)
    assert [s["step"] for s in job.history()] == list(range(10))
    assert all(s["heavy"] is None for s in job.history())
    assert [(s["step"], len(s["heavy"])) for s in job.checkpoints()] == [(0, 1000), (5, 1000)]


def test_the_owner_hook_does_not_keep_a_finished_job_alive():
    import weakref

    class SessionState:
        pass

    owner = SessionState()
    job = Job(counting(3), total=3, queue=AdmissionQueue(1)).start()
    stop_when_collected(owner, job)
    assert job.join(TIMEOUT)
    ref = weakref.ref(job)
    del job
    gc.collect()
    assert ref() is None, "a finished job is held by its owner's hook"
    del owner
    gc.collect()  # the hook of a job that is gone does nothing
