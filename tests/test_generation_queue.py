"""Streaming runs wait their turn in the server's one line (issue 17, item 6): the student is told their place,
and a run that is stopped while waiting gives its place back."""
import threading

from explorer.ui.generation import generation_queue, wait_for_turn
from tests.conftest import RecordingSlot


def test_a_waiting_student_sees_their_place_and_starts_when_a_slot_frees():
    queue = generation_queue()
    holders = [queue.join() for _ in range(queue.capacity)]  # the server is full
    ahead = queue.join()  # one more student already waiting
    mine, slot, started = queue.join(), RecordingSlot(), threading.Event()

    def page():
        with mine:
            wait_for_turn(mine, slot, "en")
            started.set()

    thread = threading.Thread(target=page)
    thread.start()
    try:
        assert not started.wait(0.6)
        assert slot.shown and "1 student is ahead of you" in slot.shown[-1]
        ahead.leave()
        holders[0].leave()
        assert started.wait(5) and slot.cleared
    finally:
        for t in holders + [ahead]:
            t.leave()
        thread.join(5)
    assert queue.running == 0 and queue.waiting == 0


def test_a_run_stopped_while_waiting_gives_its_place_back():
    queue = generation_queue()
    holders = [queue.join() for _ in range(queue.capacity)]

    class Stopped(Exception):
        pass

    class StoppingSlot(RecordingSlot):  # Streamlit raises out of the next st call when the student stops the page
        def info(self, text):
            raise Stopped

    try:
        with queue.join() as mine:
            wait_for_turn(mine, StoppingSlot(), "en")
    except Stopped:
        pass
    assert queue.waiting == 0
    for t in holders:
        t.leave()
    assert queue.running == 0
