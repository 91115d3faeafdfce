"""The pages' heavy compute runs as interactive work: a background loop (the generation engine, a training run)
calling ``priority.yield_to_interactive`` between its steps pauses while a page's cached compute runs.

Each case calls one of the pages' cached compute functions (explorer/ui/<lab>.py, the functions the pages call)
with the lab's own compute replaced by one that blocks until released. While it is blocked, a background step must
wait for it; without the page's ``with priority.interactive():`` the step would not wait at all.
"""
import itertools
import threading
import time

import pytest

from explorer import priority
from explorer.ui import attention, internals, positional

HOLD_S = 0.4  # how long the page's compute is held after it started; the background step must wait about this long
_unique = itertools.count()  # a fresh argument per call: a cache hit would skip the compute under test


def _attention_outcome(m):
    m.setattr(attention, "run", BLOCK)
    return lambda: attention.outcome(f"tokens {next(_unique)}", "settings")


def _attention_study(m):
    m.setattr(attention, "sqrt_dk_study", BLOCK)
    # the study normalises its settings with dataclasses.replace: give it a real settings object
    return lambda: attention.study(f"tokens {next(_unique)}", attention.AttentionSettings(seed=next(_unique) % 1000))


def _internals(m, target):
    m.setattr(internals, "shared_model", lambda name: "model")
    m.setattr(internals, "encode", lambda *a: "encoded")
    m.setattr(internals, target, BLOCK)


def _internals_analysis(m):
    _internals(m, "analyze")
    return lambda: internals.cached_analysis("model", f"text {next(_unique)}", False)


def _internals_lens(m):
    m.setattr(internals, "analyze", lambda *a: "analysis")
    _internals(m, "logit_lens")
    return lambda: internals.cached_lens("model", f"text {next(_unique)}", False)


def _internals_ablation(m):
    m.setattr(internals, "analyze", lambda *a: "analysis")
    _internals(m, "ablate")
    return lambda: internals.cached_ablation("model", f"text {next(_unique)}", False, ((0, 0),), ())


def _positional_outcome(m):
    m.setattr(positional, "run", BLOCK)
    return lambda: positional.outcome(f"tokens {next(_unique)}", "settings")


def _positional_patterns(m):
    m.setattr(positional, "model_for", lambda *a: "model")
    m.setattr(positional, "attention_patterns", BLOCK)
    return lambda: positional.patterns_for("rope", next(_unique), 10000.0, "tokens")


def _positional_model(m):
    m.setattr(positional, "encoding_model", BLOCK)
    return lambda: positional.model_for("rope", next(_unique), 10000.0)


class Blocker:
    """The lab's compute, replaced: it says when it started and returns only once released."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *args, **kwargs):
        self.entered.set()
        self.release.wait(10)
        return "result"


BLOCK: Blocker  # set per test


CASES = {
    "attention.outcome": _attention_outcome, "attention.study": _attention_study,
    "internals.cached_analysis": _internals_analysis, "internals.cached_lens": _internals_lens,
    "internals.cached_ablation": _internals_ablation, "positional.outcome": _positional_outcome,
    "positional.patterns_for": _positional_patterns, "positional.model_for": _positional_model,
}


@pytest.mark.parametrize("case", CASES)
def test_a_background_step_waits_while_the_page_computes(case, monkeypatch):
    global BLOCK
    BLOCK = Blocker()
    compute = CASES[case](monkeypatch)
    results = []
    page = threading.Thread(target=lambda: results.append(compute()))
    page.start()
    try:
        assert BLOCK.entered.wait(10), "the page's compute never started"
        threading.Timer(HOLD_S, BLOCK.release.set).start()
        waited = priority.yield_to_interactive(max_wait_s=10.0)
    finally:
        BLOCK.release.set()
        page.join(10)
    assert results == ["result"]
    # It waited for the page (released HOLD_S after it started), not for nothing and not for the whole bound.
    assert HOLD_S / 2 < waited < 8.0, f"{case}: the background step waited {waited:.2f} s"
    assert priority.GATE.active == 0


def test_a_background_loop_is_paused_only_while_the_page_computes(monkeypatch):
    """A loop of background steps (as the engine runs them) makes no step while the attention page computes, and
    goes on by itself afterwards."""
    global BLOCK
    BLOCK = Blocker()
    compute = _attention_outcome(monkeypatch)
    steps: list[float] = []
    stop = threading.Event()

    def background():
        while not stop.is_set() and len(steps) < 100_000:
            priority.yield_to_interactive(max_wait_s=10.0)
            steps.append(time.monotonic())
            time.sleep(0.005)

    loop = threading.Thread(target=background)
    loop.start()
    page = threading.Thread(target=compute)
    try:
        time.sleep(0.1)
        page.start()
        assert BLOCK.entered.wait(10)
        time.sleep(0.05)  # a step already past its yield may still land
        held_from = time.monotonic()
        time.sleep(HOLD_S)
        during = [t for t in steps if t > held_from]
        BLOCK.release.set()
        page.join(10)
        time.sleep(0.2)
        after = [t for t in steps if t > held_from + HOLD_S]
    finally:
        BLOCK.release.set()
        stop.set()
        loop.join(10)
    assert during == [], f"the loop made {len(during)} steps while the page computed"
    assert len(after) >= 3, "the loop did not go on after the page's compute"
