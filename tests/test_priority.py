"""explorer.priority: background steps wait for interactive work, but never longer than their bound."""
import threading

import pytest

from explorer.priority import PriorityGate


def test_no_interactive_work_means_no_wait():
    gate = PriorityGate()
    assert gate.yield_to_interactive(max_wait_s=5.0) < 0.5


def test_background_waits_until_the_interactive_section_ends():
    gate = PriorityGate()
    entered, release = threading.Event(), threading.Event()

    def page():
        with gate.interactive():
            entered.set()
            release.wait(5)

    worker = threading.Thread(target=page)
    worker.start()
    entered.wait(5)
    threading.Timer(0.3, release.set).start()
    waited = gate.yield_to_interactive(max_wait_s=5.0)
    worker.join(5)
    # It waited for the release (0.3 s after the start) and not for the whole bound (5 s).
    assert 0.2 < waited < 4.0
    assert gate.active == 0


def test_wait_is_bounded_so_background_work_is_never_starved():
    gate = PriorityGate()
    with gate.interactive():
        waited = gate.yield_to_interactive(max_wait_s=0.2)
    assert 0.15 < waited < 2.0


def test_sections_nest_and_an_exception_releases_its_count():
    gate = PriorityGate()
    with pytest.raises(RuntimeError):
        with gate.interactive():
            with gate.interactive():
                assert gate.active == 2
                raise RuntimeError("a page's compute failed")
    assert gate.active == 0
    assert gate.yield_to_interactive(max_wait_s=5.0) < 0.5
