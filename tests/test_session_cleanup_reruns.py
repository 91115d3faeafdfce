"""A burst of widget changes from one session: the newest change supersedes the queued reruns (issue 17, item 7).

A real server with the repository's .streamlit/config.toml runs a probe page; bench/st_client.py sends 20 slider
changes at once, as a student holding an arrow key does. The page records, per session, the value each run started
with, how many of the session's runs ran at once, and the full (generation 2) garbage collections meanwhile.
"""
from __future__ import annotations

import asyncio
import re
import sys
import textwrap
import threading

from .conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from st_client import Session  # noqa: E402
from st_server import serve  # noqa: E402

CHANGES = 20
PROBE = textwrap.dedent('''
    import gc
    import threading
    import time

    import streamlit as st
    from streamlit.runtime.scriptrunner import get_script_run_ctx


    @st.cache_resource
    def registry():
        reg = {"lock": threading.Lock(), "running": {}, "overlap": 0, "started": {}, "full_gc": 0}

        def count(phase, info):
            if phase == "start" and info["generation"] == 2:
                reg["full_gc"] += 1

        gc.callbacks.append(count)
        return reg


    reg = registry()
    sid = get_script_run_ctx().session_id
    value = st.slider("value", 0, 100, 0, key="value")
    with reg["lock"]:
        reg["running"][sid] = reg["running"].get(sid, 0) + 1
        reg["overlap"] = max(reg["overlap"], reg["running"][sid])
        reg["started"].setdefault(sid, []).append(value)
    try:
        for _ in range(10):  # half a second of work with a yield point (an element) every 50 ms
            st.empty()
            time.sleep(0.05)
    finally:
        with reg["lock"]:
            reg["running"][sid] -= 1
    st.markdown(f"final={value} started={reg['started'][sid]} overlap={reg['overlap']} full_gc={reg['full_gc']}")
''')


def _report(run) -> dict:
    text = next(e.text() for e in run.elements.values() if e.text().startswith("final="))
    m = re.fullmatch(r"final=(\d+) started=\[([\d, ]*)\] overlap=(\d+) full_gc=(\d+)", text)
    assert m, text
    return {"final": int(m[1]), "started": [int(v) for v in m[2].split(",") if v.strip()],
            "overlap": int(m[3]), "full_gc": int(m[4])}


async def _burst(url: str) -> tuple[dict, dict]:
    async with await Session.open(url, "/") as s:
        before = _report(await s.wait_run(60))
        last = 0.0
        for v in range(1, CHANGES + 1):
            last = await s.set("value", v)
        after = _report(await s.wait_run(60, started_after=last, until=lambda r: r.contains(f"final={CHANGES} ")))
        return before, after


def _run_in_own_loop(coro):
    """asyncio.run in a thread of its own: the browser tests' Playwright (sync API) keeps an event loop running
    on the main thread for the rest of the session, and asyncio.run refuses to start inside it."""
    out: dict = {}

    def target():
        try:
            out["value"] = asyncio.run(coro)
        except BaseException as e:  # noqa: BLE001 -- re-raised on the test's thread
            out["error"] = e

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(300)
    if thread.is_alive():
        raise TimeoutError("the burst did not finish in 300 s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_burst_of_changes_runs_the_newest_and_skips_the_stale_ones(tmp_path):
    page = tmp_path / "probe.py"
    page.write_text(PROBE)
    with serve(str(page), log=tmp_path / "server.log", ready_s=60) as server:
        before, after = _run_in_own_loop(_burst(server.url))
    burst_runs = after["started"][len(before["started"]):]
    assert burst_runs[-1] == CHANGES
    # The first change may start a run before the rest arrive, and a starved event loop may hand the others over
    # in a few batches; each batch folds into its newest. Every change ran its own run before (9 or 10 of 20).
    assert len(burst_runs) <= CHANGES // 4, f"stale changes ran: {burst_runs}"
    assert after["overlap"] == 1, "two runs of one session ran at once"
    # a full collection per run cost more than the run with the app's models loaded (memory_janitor.py)
    assert after["full_gc"] - before["full_gc"] == 0, "full garbage collections ran after the reruns"
