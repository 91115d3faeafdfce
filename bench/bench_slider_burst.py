"""Slider key presses from many sessions at once: does a newer change supersede the queued reruns? (issue 17, item 7)

    .venv/bin/python bench/bench_slider_burst.py [--page attention|positional] [--sessions 15] [--changes 51]
                                                 [--burst-s 5] [--settle-timeout 300] [-- extra streamlit args]

One server (app.py and .streamlit/config.toml, loopback), driven by bench/st_client.py sessions:
1. idle: one session changes the slider once (3 times; median): the plain rerun time.
2. solo: one session makes --changes slider changes evenly spread over --burst-s seconds (a student holding an
   arrow key); its settle time is from its last change to the finished run that shows the last value.
3. class: --sessions sessions do the same burst at once; each one's settle time, and its ratio to the solo one.
4. neighbours: the other sessions each make one change, one after another over the burst's duration, first
   without and then during one session's burst; the ratio of their rerun times (a burst must not delay the others).
It also prints the server's peak thread count (with runner.fastReruns every change started a script thread of its
own) and how long the server kept using CPU after the last session settled. In the class scenario every session's
last rerun competes with the others' for the same cores, so its settle time can at best be about sessions × the
idle rerun: the bench prints that ratio too (about 1 or below: no pile-up; far above: reruns piled up).
Every wait is bounded (--settle-timeout).
Other programs on the machine make wall times noisy: compare the ratios, and repeat.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from st_client import Session  # noqa: E402
from st_server import cpu_seconds, serve, thread_count  # noqa: E402


@dataclass(frozen=True)
class Spec:
    path: str
    label: str
    values: Callable[[int], list]  # n changes -> the values sent; the last one is sent only once
    shows: Callable[[object], str]  # a value -> text that only a run made with it draws
    neighbour_value: object  # the one change a neighbour makes (not the default)


PAGES = {
    "attention": Spec("/attention", "n_head (number of heads)",
                      lambda n: [1 + i % 15 for i in range(n - 1)] + [16], lambda v: f"{v} heads of d_k", 6),
    "positional": Spec("/positional", "Positions", lambda n: list(range(64 - n, 64)),
                       lambda v: f"PE table: {v} positions", 20),
}


@dataclass
class Burst:
    settle_s: float
    runs_seen: int  # finished runs the session received during and after its burst
    exceptions: list[str]


class Sampler:
    """Peak thread count of the server while a scenario runs (sampled every 50 ms)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._task = pid, 0, None

    async def _run(self):
        for _ in range(100_000):  # 50 ms each: far longer than any bounded scenario
            self.peak = max(self.peak, thread_count(self.pid))
            await asyncio.sleep(0.05)

    def __enter__(self):
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


async def burst(s: Session, spec: Spec, changes: int, burst_s: float, start: float, timeout: float) -> Burst:
    values = spec.values(changes)
    before = len(s.runs)
    last = start
    for i, v in enumerate(values):
        await asyncio.sleep(max(0.0, start + i * burst_s / max(changes - 1, 1) - time.monotonic()))
        last = await s.set(spec.label, v)
    final = spec.shows(values[-1])
    run = await s.wait_run(timeout, started_after=last, until=lambda r: r.contains(final))
    return Burst(settle_s=run.finished - last, runs_seen=sum(1 for r in s.runs[before:] if r.finished),
                 exceptions=s.exceptions)


async def single(s: Session, spec: Spec, value, timeout: float) -> float:
    t = await s.set(spec.label, value)
    run = await s.wait_run(timeout, started_after=t, until=lambda r: r.contains(spec.shows(value)))
    return run.finished - t


async def open_ready(url: str, spec: Spec, n: int, timeout: float) -> list[Session]:
    sessions = []
    for _ in range(n):  # one at a time: the first runs are not what this bench measures
        s = await Session.open(url, spec.path)
        await s.wait_run(timeout)
        sessions.append(s)
    return sessions


async def busy_for(pid: int, limit: float) -> float:
    """Seconds until the server stops using CPU (two quiet 0.25 s polls), at most ``limit``."""
    t0, last, quiet = time.monotonic(), cpu_seconds(pid), 0
    while quiet < 2 and time.monotonic() - t0 < limit:
        await asyncio.sleep(0.25)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.01 else 0
        last = now
    return time.monotonic() - t0 - (0.5 if quiet >= 2 else 0.0)


def summary(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f} s, max {max(xs):.2f} s"


async def scenarios(url: str, pid: int, spec: Spec, args) -> None:
    T = args.settle_timeout
    print(f"page {spec.path}, slider {spec.label!r}, {args.changes} changes in {args.burst_s:g} s per burst")

    (s,) = await open_ready(url, spec, 1, T)
    idle = [await single(s, spec, v, T) for v in (spec.neighbour_value, spec.values(2)[0], spec.neighbour_value)]
    idle_s = statistics.median(idle)
    print(f"1. idle: one change reruns in {idle_s:.2f} s (median of 3)")

    with Sampler(pid) as threads:
        solo = await burst(s, spec, args.changes, args.burst_s, time.monotonic() + 0.2, T)
        after = await busy_for(pid, T)
    await s.close()
    print(f"2. solo burst: settles {solo.settle_s:.2f} s after its last change ({solo.runs_seen} runs finished), "
          f"server busy {after:.1f} s after, peak {threads.peak} server threads")

    sessions = await open_ready(url, spec, args.sessions, T)
    await busy_for(pid, T)
    start = time.monotonic() + 0.5
    with Sampler(pid) as threads:
        results = await asyncio.gather(*(burst(x, spec, args.changes, args.burst_s, start, T) for x in sessions),
                                       return_exceptions=True)
        after = await busy_for(pid, T)
    failed = [r for r in results if isinstance(r, BaseException)]
    done = [r for r in results if not isinstance(r, BaseException)]
    settles = [r.settle_s for r in done]
    print(f"3. class: {len(sessions)} sessions burst at once; settle after the last change per session (s): "
          + " ".join(f"{x:.1f}" for x in settles))
    if settles:
        fair = len(sessions) * idle_s
        print(f"   {summary(settles)}; ratio to solo: median {statistics.median(settles) / solo.settle_s:.1f}, "
              f"max {max(settles) / solo.settle_s:.1f}; ratio to {len(sessions)} sessions x the idle rerun "
              f"({fair:.1f} s): median {statistics.median(settles) / fair:.2f}, max {max(settles) / fair:.2f}; "
              f"server busy {after:.1f} s after the last session settled, peak {threads.peak} server threads")
    if failed:
        print(f"   {len(failed)} sessions did not settle: {failed[0]!r}")
    exceptions = sorted({e for r in done for e in r.exceptions})
    print(f"   exceptions shown: {len(exceptions)}" + (f" e.g. {exceptions[0][:200]}" if exceptions else ""))

    # 4. neighbours: fresh sessions, each of which but the first changes once, one after another over the burst's
    # duration; first without a burst (control), then while the first session bursts
    await asyncio.gather(*(x.close() for x in sessions))
    sessions = await open_ready(url, spec, args.sessions, T)

    async def neighbour(x: Session, k: int, start: float, value) -> float:
        await asyncio.sleep(max(0.0, start + args.burst_s * (k + 0.5) / (len(sessions) - 1) - time.monotonic()))
        return await single(x, spec, value, T)

    async def neighbours(value, with_burst: bool):
        await busy_for(pid, T)
        start = time.monotonic() + 0.5
        jobs = [neighbour(x, k, start, value) for k, x in enumerate(sessions[1:])]
        if with_burst:
            jobs.insert(0, burst(sessions[0], spec, args.changes, args.burst_s, start, T))
        with Sampler(pid) as threads:
            results = await asyncio.gather(*jobs, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise RuntimeError(f"{len(failed)} sessions did not settle: {failed[0]!r}")
        return results, threads.peak

    try:
        alone, _ = await neighbours(spec.neighbour_value, False)
        (bursting, *during), peak = await neighbours(spec.values(2)[0], True)
    except RuntimeError as err:
        print(f"4. neighbours: {err}")
    else:
        print(f"4. neighbours: {len(during)} sessions change once each, spread over {args.burst_s:g} s; rerun time "
              f"without a burst: {summary(alone)}; during one session's burst: {summary(during)}; ratio: median "
              f"{statistics.median(during) / statistics.median(alone):.1f}, max {max(during) / max(alone):.1f} "
              f"(the burster settled {bursting.settle_s:.2f} s after its last change), peak {peak} threads")
    await asyncio.gather(*(x.close() for x in sessions))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", choices=sorted(PAGES), default="attention")
    parser.add_argument("--sessions", type=int, default=15)
    parser.add_argument("--changes", type=int, default=51)
    parser.add_argument("--burst-s", type=float, default=5.0)
    parser.add_argument("--settle-timeout", type=float, default=300.0)
    parser.add_argument("server_args", nargs="*", help="extra `streamlit run` options, after --")
    args = parser.parse_args()
    if not 2 <= args.changes <= 62 or args.sessions < 2:
        parser.error("--changes must be in 2..62 (the positional slider's range) and --sessions at least 2")
    with serve(extra=args.server_args) as server:
        t0 = time.monotonic()
        asyncio.run(scenarios(server.url, server.pid, PAGES[args.page], args))
        print(f"total {time.monotonic() - t0:.0f} s; server options: {' '.join(args.server_args) or '(config.toml)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
