"""The admission queue that caps concurrent generation runs: capacity, strict arrival order, places in line."""
import threading

import pytest

from explorer.admission import AdmissionQueue, default_capacity


def test_capacity_and_places_in_line():
    q = AdmissionQueue(capacity=2)
    a, b, c, d = (q.join() for _ in range(4))
    assert [t.admitted for t in (a, b, c, d)] == [True, True, False, False]
    assert (c.ahead(), d.ahead()) == (0, 1)
    assert not d.wait(timeout=0.01)
    b.leave()
    assert c.admitted and not d.admitted and d.ahead() == 0
    assert (q.running, q.waiting) == (2, 1)


def test_leaving_the_line_moves_the_others_up_and_is_idempotent():
    q = AdmissionQueue(capacity=1)
    first, second, third = q.join(), q.join(), q.join()
    second.leave()
    second.leave()
    assert third.ahead() == 0 and q.waiting == 1
    first.leave()
    assert third.admitted and q.running == 1 and q.waiting == 0


def test_an_exception_inside_the_block_frees_the_slot():
    q = AdmissionQueue(capacity=1)
    with pytest.raises(KeyError):
        with q.join() as ticket:
            assert ticket.wait(0)
            raise KeyError("stopped by the student")
    with q.join() as ticket:
        assert ticket.admitted


@pytest.mark.parametrize("capacity", [1, 2])
def test_threads_never_exceed_capacity_and_are_served_in_arrival_order(capacity):
    q = AdmissionQueue(capacity=capacity)
    lock = threading.Lock()
    inside, peak, served = 0, 0, []
    tickets = [q.join() for _ in range(8)]  # joined in this order, before any thread runs

    def work(i):
        nonlocal inside, peak
        with tickets[i] as t:
            assert t.wait(timeout=10)
            with lock:
                inside += 1
                peak = max(peak, inside)
                served.append(i)
            threading.Event().wait(0.005)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work, args=(i,)) for i in reversed(range(8))]  # started out of order
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert peak <= capacity and sorted(served) == list(range(8))
    if capacity == 1:  # one at a time: each is admitted only when the one before it leaves
        assert served == list(range(8))
    assert q.running == 0 and q.waiting == 0


def test_a_ticket_that_left_cannot_wait():
    q = AdmissionQueue(capacity=1)
    t = q.join()
    t.leave()
    with pytest.raises(RuntimeError):
        t.wait(0)


def test_default_capacity_leaves_a_core_and_reads_the_environment(monkeypatch):
    monkeypatch.delenv("EXPLORER_MAX_GENERATIONS", raising=False)
    assert default_capacity(cores=1) == 1
    assert default_capacity(cores=2) == 1
    assert default_capacity(cores=16) == 15
    monkeypatch.setenv("EXPLORER_MAX_GENERATIONS", "4")
    assert default_capacity(cores=2) == 4
    monkeypatch.setenv("EXPLORER_MAX_GENERATIONS", "lots")
    assert default_capacity(cores=2) == 1
    with pytest.raises(ValueError):
        AdmissionQueue(capacity=0)
