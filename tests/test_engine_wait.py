"""The page's wait in the engine's line (explorer.ui.generation.wait_for_engine): the student sees their place,
the run starts by itself when a slot frees, and a run stopped while waiting leaves the line."""
import threading

from explorer.engine import engine_for, engine_stats
from explorer.generation import generate
from explorer.models.tiny import load_tiny
from explorer.sampling import SamplingSettings
from explorer.ui.generation import wait_for_engine
from tests.conftest import RecordingSlot


def test_a_waiting_student_sees_their_place_and_starts_when_a_slot_frees(monkeypatch):
    pm = load_tiny("tiny-llama")
    monkeypatch.setattr(engine_for(pm.model), "max_batch", 1)
    monkeypatch.setattr(engine_for(pm.model), "park_after_s", 600)  # the holder keeps its slot while unread
    long = SamplingSettings(greedy=True, max_new_tokens=200)
    holder, ahead = (generate(pm.model, pm.tokenizer, p, long) for p in ("holder", "ahead"))
    next(holder)
    ahead.place()  # joins the line
    mine, slot, started = generate(pm.model, pm.tokenizer, "mine", SamplingSettings(greedy=True, max_new_tokens=3)), \
        RecordingSlot(), threading.Event()

    def page():
        wait_for_engine(mine, slot, "en", poll_s=0.05)
        started.set()

    thread = threading.Thread(target=page)
    thread.start()
    try:
        assert not started.wait(0.5)
        assert slot.shown and "You are number 2 in line" in slot.shown[-1] and "slots in use: 1)" in slot.shown[-1]
        ahead.close()
        assert not started.wait(0.3)
        assert "You are next in line" in slot.shown[-1]
        holder.close()
        assert started.wait(10) and slot.cleared
        assert len(list(mine)) == 3
    finally:
        holder.close()
        ahead.close()
        thread.join(10)


def test_a_run_stopped_while_waiting_leaves_the_line(monkeypatch):
    pm = load_tiny("tiny-llama")
    monkeypatch.setattr(engine_for(pm.model), "max_batch", 1)
    monkeypatch.setattr(engine_for(pm.model), "park_after_s", 600)  # the holder keeps its slot while unread
    holder = generate(pm.model, pm.tokenizer, "holder", SamplingSettings(greedy=True, max_new_tokens=200))
    next(holder)

    class Stopped(Exception):
        pass

    class StoppingSlot(RecordingSlot):  # Streamlit raises out of the next st call when the student stops the page
        def info(self, text):
            raise Stopped

    mine = generate(pm.model, pm.tokenizer, "mine", SamplingSettings(greedy=True, max_new_tokens=3))
    try:
        wait_for_engine(mine, StoppingSlot(), "zh")
    except Stopped:
        pass
    assert mine.closed and engine_stats(pm.model)["waiting"] == 0
    holder.close()
