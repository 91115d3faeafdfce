"""Is bench/st_client.py a browser as far as the server's load goes? The same reruns from Chromium and from the client.

    .venv/bin/python bench/bench_client_vs_browser.py [--reruns 6] [--rounds 2] [--record]

One server (app.py, loopback). On the attention lab, Chromium (playwright, Debian's chromium) presses ArrowRight /
ArrowLeft on the n_head slider and the client sets the same values (4 -> 5 -> 4 ...), in alternating blocks. Each
rerun reports the server process's CPU seconds (from the request until the process is idle again), the
ForwardMsgs and bytes the server sent for it (decoded from the browser's websocket frames, and as the client
received them), the elements drawn, and the time from the request to script_finished. With --record the table is
written into the docstring of bench/st_client.py. Wall times are noisy on a shared 2-core machine; CPU seconds and
bytes are the comparison.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from st_client import Session  # noqa: E402
from st_server import cpu_seconds, serve  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

PAGE = "/attention"
SLIDER = "n_head (number of heads)"
VALUES = (5, 4)  # from the default 4: right, left, right, ...
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
IDLE_POLL_S, IDLE_CPU_S, IDLE_MAX_S = 0.1, 0.003, 5.0
CLIENT_FILE = Path(__file__).resolve().parent / "st_client.py"
BEGIN = "<!-- client-vs-browser: begin (written by bench/bench_client_vs_browser.py --record; do not edit) -->"
END = "<!-- client-vs-browser: end -->"


@dataclass
class Rerun:
    cpu_s: float
    messages: int
    bytes: int
    elements: int
    wall_s: float
    run_s: float  # new_session to script_finished, as the receiver saw them
    requests: int  # rerun_script BackMsgs sent for it
    exceptions: int


def wait_idle(pid: int, sleep) -> float:
    """CPU seconds of the server once it stops using CPU (two quiet polls in a row), at most IDLE_MAX_S."""
    last, quiet, deadline = cpu_seconds(pid), 0, time.monotonic() + IDLE_MAX_S
    while quiet < 2 and time.monotonic() < deadline:
        sleep(IDLE_POLL_S)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last <= IDLE_CPU_S else 0
        last = now
    return last


# ---- Chromium ------------------------------------------------------------------------------------------------
def browser_block(url: str, pid: int, n: int, browser) -> list[Rerun]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    frames: list[tuple[str, ForwardMsg | BackMsg, int, float]] = []  # direction, message, size, when seen

    def on_ws(ws):
        def received(payload):
            if isinstance(payload, bytes):
                m = ForwardMsg()
                m.ParseFromString(payload)
                frames.append(("in", m, len(payload), time.monotonic()))

        def sent(payload):
            if isinstance(payload, bytes):
                m = BackMsg()
                m.ParseFromString(payload)
                frames.append(("out", m, len(payload), time.monotonic()))
        ws.on("framereceived", received)
        ws.on("framesent", sent)

    page.on("websocket", on_ws)

    def finished_after(start: int, timeout: float = 120.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(start, len(frames)):
                d, m = frames[i][:2]
                if d == "in" and m.WhichOneof("type") == "script_finished" and \
                        m.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    return i
            page.wait_for_timeout(10)
        raise TimeoutError("the browser saw no finished run")

    page.goto(url + PAGE)
    finished_after(0)
    wait_idle(pid, lambda s: page.wait_for_timeout(s * 1000))
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="n_head").get_by_role("slider")
    thumb.wait_for(timeout=120_000)
    out: list[Rerun] = []
    try:
        for i in range(n):
            start, cpu0 = len(frames), cpu_seconds(pid)
            thumb.focus()
            thumb.press("ArrowRight" if VALUES[i % 2] == 5 else "ArrowLeft")
            end = finished_after(start)
            sent = [f for f in frames[start:end + 1] if f[0] == "out" and f[1].WhichOneof("type") == "rerun_script"]
            cpu1 = wait_idle(pid, lambda s: page.wait_for_timeout(s * 1000))
            got = [f for f in frames[start:] if f[0] == "in"]
            out.append(Rerun(
                cpu_s=cpu1 - cpu0, messages=len(got), bytes=sum(f[2] for f in got),
                elements=sum(1 for f in got if f[1].WhichOneof("type") in ("delta", "ref_hash")),
                wall_s=frames[end][3] - sent[0][3], requests=len(sent),
                run_s=frames[end][3] - next(f[3] for f in got if f[1].WhichOneof("type") == "new_session"),
                exceptions=page.locator('[data-testid="stException"]').count()))
            assert thumb.get_attribute("aria-valuetext") == str(VALUES[i % 2]), "the slider did not move"
    finally:
        context.close()
    return out


# ---- the client ------------------------------------------------------------------------------------------------
async def client_block(url: str, pid: int, n: int) -> list[Rerun]:
    async def sleep(s):
        await asyncio.sleep(s)

    async def idle() -> float:
        last, quiet, deadline = cpu_seconds(pid), 0, time.monotonic() + IDLE_MAX_S
        while quiet < 2 and time.monotonic() < deadline:
            await sleep(IDLE_POLL_S)
            now = cpu_seconds(pid)
            quiet = quiet + 1 if now - last <= IDLE_CPU_S else 0
            last = now
        return last

    out: list[Rerun] = []
    async with await Session.open(url, PAGE) as s:
        await s.wait_run()
        await idle()
        for i in range(n):
            m0, b0, cpu0 = s.messages, s.bytes, cpu_seconds(pid)
            t = await s.set(SLIDER, VALUES[i % 2])
            run = await s.wait_run(started_after=t)
            wall = run.seconds_since(t)
            cpu1 = await idle()
            out.append(Rerun(cpu_s=cpu1 - cpu0, messages=s.messages - m0, bytes=s.bytes - b0,
                             elements=run.deltas, wall_s=wall, run_s=run.finished - run.started, requests=1,
                             exceptions=len(run.exceptions)))
            assert s.value(SLIDER) == [float(VALUES[i % 2])]
    return out


def in_thread(coro):
    """Run a coroutine to completion on its own thread: playwright's sync API owns this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def table(browser: list[Rerun], client: list[Rerun]) -> list[str]:
    def med(rs, f):
        return statistics.median(getattr(r, f) for r in rs)

    rows = [("server CPU per rerun (ms)", "cpu_s", 1000, "{:.0f}"), ("messages sent", "messages", 1, "{:.0f}"),
            ("bytes sent", "bytes", 1, "{:.0f}"), ("deltas (elements, blocks)", "elements", 1, "{:.0f}"),
            ("request to script_finished (ms)", "wall_s", 1000, "{:.0f}"),
            ("new_session to script_finished (ms)", "run_s", 1000, "{:.0f}"),
            ("rerun requests per change", "requests", 1, "{:.0f}"), ("exceptions shown", "exceptions", 1, "{:.0f}")]
    lines = [f"{'median of ' + str(len(browser)) + ' reruns':34s} {'Chromium':>10s} {'st_client':>10s} {'ratio':>6s}"]
    for name, f, scale, fmt in rows:
        b, c = med(browser, f) * scale, med(client, f) * scale
        ratio = f"{c / b:.2f}" if b else "-"
        lines.append(f"{name:34s} {fmt.format(b):>10s} {fmt.format(c):>10s} {ratio:>6s}")
    return lines


def record(lines: list[str], meta: str) -> None:
    text = CLIENT_FILE.read_text()
    i, j = text.index(BEGIN) + len(BEGIN), text.index(END)
    CLIENT_FILE.write_text(text[:i] + "\n" + meta + "\n" + "\n".join(lines) + "\n" + text[j:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=6, help="reruns per block (>= 2)")
    parser.add_argument("--rounds", type=int, default=2, help="browser block + client block, this many times")
    parser.add_argument("--record", action="store_true", help="write the table into bench/st_client.py")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    browser_runs: list[Rerun] = []
    client_runs: list[Rerun] = []
    with serve() as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            in_thread(client_block(server.url, server.pid, 1))  # warm-up: imports, first computations
            for _ in range(args.rounds):
                browser_runs += browser_block(server.url, server.pid, args.reruns, browser)
                client_runs += in_thread(client_block(server.url, server.pid, args.reruns))
        finally:
            browser.close()
    lines = table(browser_runs, client_runs)
    meta = (f"{PAGE}, {SLIDER!r} {VALUES[0]} <-> {VALUES[1]}, {args.rounds} alternating rounds of "
            f"{args.reruns} reruns each, {os.cpu_count()} CPUs:")
    print(meta)
    print("\n".join(lines))
    if args.record:
        record(lines, meta)
        print(f"written into {CLIENT_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
