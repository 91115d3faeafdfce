"""Is memory given back when students leave? Server RSS over rounds of sessions (issue 17, item 5).

    .venv/bin/python bench/bench_session_memory.py [--rounds 10] [--sessions 10] [--ttl 5] [--max-new-tokens 4]
                                                  [--settle-s 25] [--idle-s 0] [-- extra streamlit args]

Starts app.py (loopback, free port) with server.disconnectedSessionTTL=--ttl. Each round opens --sessions sessions
at once (bench/st_client.py); each student, with a text of their own, generates --max-new-tokens tokens in the
generation lab, then moves (same session) to the attention lab and types a sentence, then to the internals lab
and types a text; then every session closes. A warm-up visit comes first (imports, model loads). After each
round the bench waits --settle-s (past the TTL: the sessions have expired), then until the server is idle, and
prints the server's RSS (VmRSS of /proc/PID/status). Goal (issue 17): RSS after
the last round within 10 % of RSS after the first. Every wait is bounded; --idle-s adds a final idle wait.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from st_client import Session  # noqa: E402
from st_server import cpu_seconds, rss_bytes, serve, thread_count  # noqa: E402

WORDS = ("river mountain teacher student window garden music paper silver morning yellow quiet bridge "
         "letter summer forest market dinner travel simple rabbit orange planet doctor basket").split()
STEP_TIMEOUT_S = 300.0
MB = 1 << 20


def unique_text(rng: random.Random, round_: int, student: int) -> str:
    return f"In round {round_} student {student} saw the " + " ".join(rng.sample(WORDS, 6)) + "."


class Shown(Exception):
    """A page showed an exception: the visit stops there."""


async def student(url: str, round_: int, i: int, max_new: int, rng: random.Random) -> list[str]:
    """One student's visit; returns the exceptions the pages showed (the visit stops at the first)."""
    text = unique_text(rng, round_, i)
    s = await Session.open(url, "/generation")

    async def done(t: float | None, until=None):
        run = await s.wait_run(STEP_TIMEOUT_S, started_after=t, until=until)
        if run.exceptions:
            raise Shown(run.exceptions[0])

    try:
        await done(None)
        await s.set("Prompt", text)
        await s.set("Max new tokens", max_new)
        await done(await s.click("Generate"), until=lambda r: r.contains("Finished after"))
        await done(await s.goto("/attention"))
        await done(await s.set("Sentence (English or Chinese)", text))
        await done(await s.goto("/internals"))
        await done(await s.set("Text", text))
        return []
    except Shown as shown:
        return [str(shown)]
    finally:
        await s.close()


async def wait_idle(pid: int, at_least: float, limit: float) -> float:
    """Wait ``at_least`` seconds, then until the server is idle (two quiet 0.5 s polls), at most ``limit``."""
    t0 = time.monotonic()
    await asyncio.sleep(at_least)
    last, quiet = cpu_seconds(pid), 0
    while quiet < 2 and time.monotonic() - t0 < limit:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        quiet = quiet + 1 if now - last < 0.02 else 0
        last = now
    return time.monotonic() - t0


async def rounds(url: str, pid: int, args) -> list[int]:
    rng = random.Random(0)
    print(f"idle server before any session: RSS {rss_bytes(pid) / MB:.0f} MB")
    # the teacher opens the labs first: imports and model loads are not what the rounds measure
    shown = await student(url, 0, 0, args.max_new_tokens, rng)
    await wait_idle(pid, max(args.ttl + 2, args.settle_s), args.settle_s + 60)
    print(f"after one warm-up visit: RSS {rss_bytes(pid) / MB:.0f} MB" + (f", shown: {shown}" if shown else ""))
    after: list[int] = []
    for r in range(1, args.rounds + 1):
        t0 = time.monotonic()
        results = await asyncio.gather(*(student(url, r, i, args.max_new_tokens, rng) for i in range(args.sessions)),
                                       return_exceptions=True)
        failed = [x for x in results if isinstance(x, BaseException)]
        shown = sorted({e for x in results if not isinstance(x, BaseException) for e in x})
        busy = rss_bytes(pid)
        # past the TTL, and past a quiet tick of the app's memory janitor (explorer/memory_janitor.py)
        waited = await wait_idle(pid, max(args.ttl + 2, args.settle_s), args.settle_s + 60)
        after.append(rss_bytes(pid))
        print(f"round {r:2d}: {time.monotonic() - t0 - waited:5.1f} s, RSS {busy / MB:6.0f} MB with the sessions "
              f"closed, {after[-1] / MB:6.0f} MB {waited:.0f} s later (past the {args.ttl} s TTL), "
              f"{thread_count(pid)} threads" + (f", {len(failed)} sessions failed: {failed[0]!r}" if failed else "")
              + (f", exceptions shown: {shown[:2]}" if shown else ""))
    if args.idle_s:
        await asyncio.sleep(args.idle_s)
        print(f"after {args.idle_s:.0f} s more idle: RSS {rss_bytes(pid) / MB:.0f} MB")
    return after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--ttl", type=int, default=5, help="server.disconnectedSessionTTL for the bench (s)")
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--settle-s", type=float, default=25.0, help="wait at least this long after a round")
    parser.add_argument("--idle-s", type=float, default=0.0)
    parser.add_argument("server_args", nargs="*", help="extra `streamlit run` options, after --")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100 or not 1 <= args.sessions <= 100:
        parser.error("--rounds and --sessions must be in 1..100")
    with serve(extra=["--server.disconnectedSessionTTL", str(args.ttl), *args.server_args]) as server:
        after = asyncio.run(rounds(server.url, server.pid, args))
    growth = after[-1] / after[0] - 1
    print(f"RSS after round {len(after)} vs round 1 (both past the TTL): {after[-1] / MB:.0f} / {after[0] / MB:.0f} MB"
          f" = {growth:+.1%} (goal: within 10 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
