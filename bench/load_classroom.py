"""A class at once: N simulated students open the generation lab, move its sliders and press Generate together,
while others move the attention lab's sliders (issue 12, §3).

    .venv/bin/python bench/load_classroom.py [--n 1 10 30] [--quick] [--max-new-tokens 32] [--rounds 10]
                                             [--round-size 10] [--round-tokens 8] [--probes 2]
                                             [--time-limit-s 2400] [--engine-process [--engine-threads N]
                                             [--engine-nice N]] [-- extra `streamlit run` options]

One server (app.py, .streamlit/config.toml, a free loopback port), driven by bench/st_client.py sessions, which
bench/bench_client_vs_browser.py showed load the server as Chromium does. Phases, each wait bounded:
1. warm-up (model load, imports; not measured), then the attention slider at idle and each prompt's solo run:
   one student alone, greedy, --max-new-tokens (its answer is the reference; its tokens/s is "one student's rate").
2. for each N, once the engine has forgotten the prompts it stored (ENGINE_IDLE_EXIT_S): --probes sessions sit
   on the attention lab; N students open the generation lab, choose greedy decoding, type a prompt (students take
   turns over the ten PROMPTS) and move the "Max new tokens" slider; then all press Generate at once. Meanwhile
   each probe moves the n_head slider (a new value after each answer, --think-s apart). Per student: time to first
   token (the click to the first "token 1 of ..." caption), tokens and tokens/s (tokens / (finished caption -
   click)); in total: all tokens / (last finished - click); the probes' slider-to-finished-run times; exceptions
   shown in any page; disconnects; the server's RSS peak (sampled every 0.2 s); each greedy answer against the
   others with the same prompt and against its solo answer (no cross-talk); with --engine-process, what the
   engine did (decode steps, their batch and time, prompt tokens read and reused, from its /health).
3. --rounds rounds of join/generate/leave (--round-size students, --round-tokens tokens, then a slider change in
   the attention lab, then every tab closes); after each the server's RSS once the sessions have expired and the
   server is quiet, and the least-squares slope of RSS over the rounds.
4. the issue's goals, PASS/FAIL, at the largest N run (the goals are set for N = 30).

--engine-process measures the class set-up of `make serve-class` on one machine: the engine in its own process
(python -m explorer.serving, as explorer/serving/cluster.py starts it) and the app told its address in
EXPLORER_ENGINE_URL, so the pages and the decoder no longer share one interpreter. RSS is then the app's; the
engine's is printed beside it. --engine-threads and --engine-nice set the engine process's torch threads and its
CPU priority below the app's.

Texts and labels are read from the English catalog (assets/i18n), so a reworded caption does not break the bench.
The client runs on the same cores as the server: it prints its own CPU share of each phase.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import re
import statistics
import string
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_session_memory import wait_idle  # noqa: E402
from st_client import Run, Session  # noqa: E402
from st_server import rss_bytes, serve  # noqa: E402

sys.path.insert(0, str(BENCH.parent))
from explorer.serving.cluster import Child, free_port  # noqa: E402

MB = 1 << 20
# Ten questions, taken in turn: in a class of 30 every question is asked by three students (their greedy answers
# must agree) and no two neighbours ask the same, so the engine's reuse of prompts' beginnings shares the chat
# template with everyone and a whole prompt only with two others. Each answer is longer than the default 32 tokens
# (checked greedy on SmolLM2), so every student decodes the same number of steps.
PROMPTS = (
    "Write a short story about a robot who learns to paint.",
    "Explain how a rainbow forms, step by step.",
    "Describe a busy market in a small town in the morning.",
    "Explain why the sea is salty.",
    "Write a letter to a friend about your summer holiday.",
    "Describe how bread is made, from flour to loaf.",
    "Tell me about the life of a honeybee.",
    "Explain how plants grow from a seed.",
    "Write a poem about the moon over a quiet lake.",
    "Describe a thunderstorm at night.",
)
GOAL_N = 30
GOAL_TTFT_P95_S = 3.0
GOAL_SLIDER_P95_S = 1.0
GOAL_SPEEDUP = 5.0
# RSS is flat when the fitted growth over all rounds stays under this share of the first round's RSS. A leak of one
# finished run per student visit (its KV cache: 30 layers x 2 x 3 KV heads x 64 x 4 bytes x 40 tokens, 1.8 MB for
# SmolLM2) over 10 rounds of 10 students is 180 MB, about 11 % of the 1.6 GB server with SmolLM2 loaded; after the
# memory janitor's release the rounds differ by a few MB.
FLAT_SHARE = 0.05
# The engines (the app's, or the engine process) end their thread, forgetting the prompts they stored, after this
# long without work, and each class phase starts later than that: its prompts are new to the engine, as a class's
# own questions are, and not the solo runs' (the same ten prompts) read again from the store.
ENGINE_IDLE_EXIT_S = 2.0
OPEN_TIMEOUT_S = 180.0  # 30 first script runs of the generation lab at once on 2 cores
RUN_TIMEOUT_S = 120.0
SLIDER_TIMEOUT_S = 60.0


# ---- the catalog's texts, without importing the library (and torch) into the client process -----------------------
def _load_i18n():
    spec = importlib.util.spec_from_file_location("_bench_i18n", BENCH.parent / "explorer" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.catalog("en")


def template_pattern(template: str, group: str) -> re.Pattern:
    """A regex matching ``template``'s text with any values, capturing placeholder ``group`` (a whole number)."""
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(rf"(?P<{group}>[\d,]+)" if name == group else ".*?")
    return re.compile("".join(parts), re.S)


EN = _load_i18n()
PROMPT, GENERATE, MAX_NEW = EN["generation.prompt"], EN["generation.generate"], EN["generation.max_new_tokens"]
DECODING, GREEDY = EN["generation.decoding"], EN["generation.greedy"]
STREAMING = template_pattern(EN["generation.streaming"], "n")
FINISHED = template_pattern(EN["generation.finished"], "n")
N_HEAD, SEED = EN["attention.sidebar.n_head"], EN["attention.sidebar.seed"]
N_HEAD_VALUES = (1, 2, 8, 16, 4)  # divisors of the lab's default d_model (64): each draws a layer, none a warning
ANSWER_KEY = "gen_text"  # the generation page's answer box (st.container(key=...))


# ---- pure parts (tests/test_load_classroom.py) ------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics; nan when empty."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def slope(ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` against 0, 1, 2, ... (per step); 0 for fewer than two points."""
    n = len(ys)
    if n < 2:
        return 0.0
    mx, my = (n - 1) / 2, sum(ys) / n
    return sum((i - mx) * (y - my) for i, y in enumerate(ys)) / sum((i - mx) ** 2 for i in range(n))


def rss_flat(rss: Sequence[float], share: float = FLAT_SHARE) -> bool:
    """Whether the fitted growth over the rounds stays below ``share`` of the first round's RSS."""
    return len(rss) >= 2 and slope(rss) * (len(rss) - 1) < share * rss[0]


def answer_problems(answers: Sequence[tuple[int, str, str | None]], solo: dict[str, str]) -> list[str]:
    """What is wrong with greedy answers (student, prompt, answer): a missing answer, two students with the same
    prompt answered differently, an answer other than that prompt's solo answer. Empty: no cross-talk."""
    problems = []
    by_prompt: dict[str, dict[str, list[int]]] = {}
    for student, prompt, answer in answers:
        if answer is None:
            problems.append(f"student {student}: no answer")
            continue
        by_prompt.setdefault(prompt, {}).setdefault(answer, []).append(student)
        if prompt in solo and answer != solo[prompt]:
            problems.append(f"student {student}: answer differs from the solo answer to {prompt[:30]!r}: "
                            f"{answer[:60]!r} vs {solo[prompt][:60]!r}")
    for prompt, found in by_prompt.items():
        if len(found) > 1:
            groups = "; ".join(f"students {ids}" for ids in found.values())
            problems.append(f"{len(found)} different answers to the same prompt {prompt[:30]!r}: {groups}")
    return problems


@dataclass(frozen=True)
class Goal:
    name: str
    ok: bool
    detail: str


def goals(*, n: int, problems: int, total_tps: float, solo_tps: float, ttft_p95: float, slider_p95: float,
          rss: Sequence[float], cross_talk: Sequence[str]) -> list[Goal]:
    """The issue's goals for the phase with ``n`` students (set for N = 30)."""
    speedup = total_tps / solo_tps if solo_tps > 0 else math.nan
    growth = slope(rss) * (len(rss) - 1) if len(rss) >= 2 else math.nan
    return [
        Goal(f"N={n}: no exception shown and no disconnect", problems == 0, f"{problems} found"),
        Goal(f"N={n}: total tokens/s >= {GOAL_SPEEDUP:g} x one student's solo rate", speedup >= GOAL_SPEEDUP,
             f"{total_tps:.1f} / {solo_tps:.1f} = {speedup:.2f} x"),
        Goal(f"N={n}: first token p95 < {GOAL_TTFT_P95_S:g} s", ttft_p95 < GOAL_TTFT_P95_S, f"{ttft_p95:.2f} s"),
        Goal(f"N={n}: attention slider p95 < {GOAL_SLIDER_P95_S:g} s during the load",
             slider_p95 < GOAL_SLIDER_P95_S, f"{slider_p95:.2f} s"),
        Goal(f"RSS flat over {len(rss)} rounds of join/generate/leave", rss_flat(rss),
             f"slope {slope(rss) / MB:+.1f} MB/round, fitted growth {growth / MB:+.0f} MB "
             f"(limit {FLAT_SHARE:.0%} of {rss[0] / MB if rss else math.nan:.0f} MB)"),
        Goal(f"N={n}: greedy answers identical across students and to their solo answers", not cross_talk,
             f"{len(cross_talk)} problems"),
    ]


# ---- one student, one probe -------------------------------------------------------------------------------------
def _count(pattern: re.Pattern, text: str) -> int | None:
    m = pattern.search(text)
    return int(m.group("n").replace(",", "")) if m else None


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, most: float) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the bench's --time-limit-s is spent")
        return min(most, left)


@dataclass
class Student:
    url: str
    index: int
    prompt: str
    max_new: int
    deadline: Deadline
    session: Session | None = None
    click: float | None = None
    first: float | None = None  # the first "token 1 of ..." caption of the run the click started
    done: float | None = None  # its "Finished after n tokens" caption
    tokens: int = 0
    answer: str | None = None
    error: str | None = None

    def _seen(self, run: Run, path, element, when: float) -> None:
        if self.click is None or run.started < self.click or element.kind != "markdown":
            return
        text = element.text()
        if self.first is None and _count(STREAMING, text) is not None:
            self.first = when
        if self.done is None and _count(FINISHED, text) is not None:
            self.done = when

    async def join(self) -> None:
        """Open the generation lab; greedy decoding, this student's prompt, the max new tokens slider."""
        self.session = s = await Session.open(self.url, "/generation", self.deadline.left(OPEN_TIMEOUT_S))
        s.on_element = self._seen
        await s.wait_run(self.deadline.left(OPEN_TIMEOUT_S))
        await s.set(DECODING, GREEDY)
        await s.set(PROMPT, self.prompt)
        t = await s.set(MAX_NEW, self.max_new)
        await s.wait_run(self.deadline.left(OPEN_TIMEOUT_S), started_after=t)
        if s.value(MAX_NEW) != [float(self.max_new)]:
            raise RuntimeError(f"student {self.index}: the slider shows {s.value(MAX_NEW)}, not {self.max_new}")

    async def generate(self, timeout: float) -> None:
        self.click = time.monotonic()  # already set while the click is sent: the answer may start arriving then
        self.click = await self.session.click(GENERATE)
        run = await self.session.wait_run(self.deadline.left(timeout), started_after=self.click,
                                          until=lambda r: any(_count(FINISHED, e.text()) is not None
                                                              for e in r.elements.values()))
        self.tokens = next(n for e in run.elements.values() if (n := _count(FINISHED, e.text())) is not None)
        self.answer = "\n".join(run.texts_in(ANSWER_KEY))
        self.done = self.done or run.finished

    async def visit_attention(self) -> None:
        s = self.session
        await s.wait_run(self.deadline.left(RUN_TIMEOUT_S), started_after=await s.goto("/attention"))
        await s.wait_run(self.deadline.left(RUN_TIMEOUT_S), started_after=await s.set(N_HEAD, 8))

    @property
    def ttft(self) -> float | None:
        return None if self.first is None or self.click is None else self.first - self.click

    @property
    def tps(self) -> float | None:
        """Tokens per second as the student saw them: from the click (the wait for a slot included)."""
        return None if self.done is None or not self.tokens else self.tokens / (self.done - self.click)

    @property
    def stream_tps(self) -> float | None:
        """Tokens per second once the answer started: the speed of the text appearing."""
        if self.done is None or self.first is None or self.tokens < 2 or self.done <= self.first:
            return None
        return (self.tokens - 1) / (self.done - self.first)

    def problems(self) -> list[str]:
        found = [f"student {self.index}: {e}" for e in (self.session.exceptions if self.session else [])]
        if self.session is not None and self.session.disconnected:
            found.append(f"student {self.index} disconnected: {self.session.disconnected}")
        if self.error:
            found.append(f"student {self.index}: {self.error}")
        return found

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


@dataclass
class Probe:
    """Someone elsewhere in the class: the attention lab, a new n_head after each answer."""

    url: str
    index: int
    seed: int
    deadline: Deadline
    think_s: float
    session: Session | None = None
    times: list[float] = field(default_factory=list)
    error: str | None = None

    async def open(self) -> None:
        self.session = s = await Session.open(self.url, "/attention", self.deadline.left(OPEN_TIMEOUT_S))
        await s.wait_run(self.deadline.left(OPEN_TIMEOUT_S))
        await s.wait_run(self.deadline.left(RUN_TIMEOUT_S), started_after=await s.set(SEED, self.seed))

    async def move(self) -> float:
        """One slider change; seconds from the request to the end of the run that answers it. A new seed after
        each cycle of values, so that most changes compute a layer rather than hit the page's cache."""
        s, k = self.session, len(self.times)
        if k and k % len(N_HEAD_VALUES) == 0:
            self.seed += 1
            await s.wait_run(self.deadline.left(SLIDER_TIMEOUT_S), started_after=await s.set(SEED, self.seed))
        t = await s.set(N_HEAD, N_HEAD_VALUES[k % len(N_HEAD_VALUES)])
        run = await s.wait_run(self.deadline.left(SLIDER_TIMEOUT_S), started_after=t)
        self.times.append(run.finished - t)
        return self.times[-1]

    async def loop(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.move()
                try:
                    await asyncio.wait_for(stop.wait(), self.think_s)
                except asyncio.TimeoutError:
                    pass
        except Exception as err:  # a finding of the bench (a timeout, a lost page), reported with the probe
            self.error = f"{type(err).__name__}: {err}"

    def problems(self) -> list[str]:
        found = [f"probe {self.index}: {e}" for e in (self.session.exceptions if self.session else [])]
        if self.session is not None and self.session.disconnected:
            found.append(f"probe {self.index} disconnected: {self.session.disconnected}")
        if self.error:
            found.append(f"probe {self.index}: {self.error}")
        return found


class RssPeak:
    """The server's RSS peak while a phase runs (sampled every 0.2 s)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._task = pid, 0, None

    async def _run(self):
        for _ in range(10_000_000):
            self.peak = max(self.peak, rss_bytes(self.pid))
            await asyncio.sleep(0.2)

    def __enter__(self):
        self.peak = rss_bytes(self.pid)
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


async def _settle(coros) -> list[BaseException | None]:
    """Run ``coros`` at once; the exception each raised (None when it finished)."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def _note(who: Student | Probe, err: BaseException | None) -> None:
    if err is not None and who.error is None:
        who.error = f"{type(err).__name__}: {err}"


# ---- phases -------------------------------------------------------------------------------------------------------
@dataclass
class Phase:
    n: int
    students: list[Student]
    probes: list[Probe]
    rss_peak: int
    wall_s: float
    client_cpu_share: float

    @property
    def ttfts(self) -> list[float]:
        return [s.ttft for s in self.students if s.ttft is not None]

    @property
    def rates(self) -> list[float]:
        return [s.tps for s in self.students if s.tps is not None]

    @property
    def stream_rates(self) -> list[float]:
        return [s.stream_tps for s in self.students if s.stream_tps is not None]

    @property
    def total_tps(self) -> float:
        done = [s for s in self.students if s.done is not None]
        if not done:
            return 0.0
        return sum(s.tokens for s in done) / (max(s.done for s in done) - min(s.click for s in done))

    @property
    def slider_times(self) -> list[float]:
        return [t for p in self.probes for t in p.times]

    def problems(self) -> list[str]:
        return [p for who in (*self.students, *self.probes) for p in who.problems()]


async def class_phase(url: str, pid: int, n: int, args, deadline: Deadline, phase_no: int) -> Phase:
    students = [Student(url, i, PROMPTS[i % len(PROMPTS)], args.max_new_tokens, deadline) for i in range(n)]
    probes = [Probe(url, i, 100 * phase_no + 10 * i, deadline, args.think_s) for i in range(args.probes)]
    cpu0, t0 = time.process_time(), time.monotonic()
    with RssPeak(pid) as peak:
        for who, err in zip(probes, await _settle(p.open() for p in probes)):
            _note(who, err)
        for who, err in zip(students, await _settle(s.join() for s in students)):
            _note(who, err)
        ready = [s for s in students if s.error is None]
        stop = asyncio.Event()
        moving = [asyncio.create_task(p.loop(stop)) for p in probes if p.error is None]
        for who, err in zip(ready, await _settle(s.generate(RUN_TIMEOUT_S + 10 * n) for s in ready)):
            _note(who, err)
        stop.set()
        await asyncio.gather(*moving)
        await _settle([*(s.close() for s in students), *(p.session.close() for p in probes if p.session)])
    wall = time.monotonic() - t0
    return Phase(n, students, probes, peak.peak, wall, (time.process_time() - cpu0) / wall / _cores())


def _cores() -> int:
    return len(os.sched_getaffinity(0))


async def solo_runs(url: str, args, deadline: Deadline) -> dict[str, Student]:
    """Each prompt the classes use, alone on the server: its greedy answer and its rate."""
    solo = {}
    for i, prompt in enumerate(PROMPTS[:max(args.n)]):
        s = Student(url, -1 - i, prompt, args.max_new_tokens, deadline)
        try:
            await s.join()
            await s.generate(RUN_TIMEOUT_S)
        except Exception as err:  # reported with the solo line, and the goals using it fail
            _note(s, err)
        finally:
            await s.close()
        solo[prompt] = s
    return solo


async def idle_slider(url: str, deadline: Deadline, changes: int) -> list[float]:
    probe = Probe(url, -1, 9_000, deadline, 0.0)
    await probe.open()
    try:
        return [await probe.move() for _ in range(changes)]
    finally:
        await probe.session.close()


async def rss_rounds(url: str, pid: int, args, deadline: Deadline) -> tuple[list[int], list[str]]:
    after, problems = [], []
    for r in range(args.rounds):
        students = [Student(url, i, PROMPTS[i % len(PROMPTS)], args.round_tokens, deadline)
                    for i in range(args.round_size)]
        t0 = time.monotonic()
        for who, err in zip(students, await _settle(s.join() for s in students)):
            _note(who, err)
        ready = [s for s in students if s.error is None]
        for who, err in zip(ready, await _settle(s.generate(RUN_TIMEOUT_S + 10 * len(ready)) for s in ready)):
            _note(who, err)
        visiting = [s for s in ready if s.error is None]
        for who, err in zip(visiting, await _settle(s.visit_attention() for s in visiting)):
            _note(who, err)
        busy = rss_bytes(pid)
        round_problems = [p for s in students for p in s.problems()]
        round_problems += answer_problems([(s.index, s.prompt, s.answer) for s in students], {})
        await _settle(s.close() for s in students)
        waited = await wait_idle(pid, args.settle_s, deadline.left(args.settle_s + 60))
        after.append(rss_bytes(pid))
        problems += [f"round {r + 1}: {p}" for p in round_problems]
        print(f"  round {r + 1:2d}: {time.monotonic() - t0 - waited:5.1f} s, RSS {busy / MB:6.0f} MB before the tabs "
              f"closed, {after[-1] / MB:6.0f} MB {waited:.0f} s after" +
              (f", {len(round_problems)} problems: {round_problems[0]}" if round_problems else ""), flush=True)
    return after, problems


# ---- report ---------------------------------------------------------------------------------------------------------
def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x * 1000:.0f}"


def load_average() -> str:
    """The machine's 1-minute load average against its cores: above 1 x cores, other programs shared the CPU."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def print_phase(p: Phase, solo_tps: float, engine: str = "") -> None:
    rates = p.rates
    print(f"N={p.n}: {p.wall_s:.1f} s, {load_average()}, client CPU {p.client_cpu_share:.0%} of the cores\n"
          f"       first token p50 {_ms(percentile(p.ttfts, 50))} ms, p95 {_ms(percentile(p.ttfts, 95))} ms "
          f"({len(p.ttfts)} of {p.n} students)\n"
          f"       tokens/s per student p50 {percentile(rates, 50):.1f}, min {min(rates, default=math.nan):.1f} "
          f"(once streaming p50 {percentile(p.stream_rates, 50):.1f}); total {p.total_tps:.1f} tokens/s = "
          f"{p.total_tps / solo_tps:.2f} x one student's solo rate\n"
          f"       attention slider during the load p50 {_ms(percentile(p.slider_times, 50))} ms, p95 "
          f"{_ms(percentile(p.slider_times, 95))} ms ({len(p.slider_times)} changes); server RSS peak "
          f"{p.rss_peak / MB:.0f} MB{engine}", flush=True)
    problems = p.problems()
    exceptions = sum(1 for x in problems if "disconnected" not in x)
    disconnects = sum(1 for x in problems if "disconnected" in x)
    print(f"       problems: {exceptions} exceptions/errors, {disconnects} disconnects"
          + "".join(f"\n         {x}" for x in problems[:5]))


@dataclass
class Report:
    solo: dict[str, Student]
    solo_tps: float
    phases: list[Phase]
    rss: list[int]
    round_problems: list[str]
    log_tracebacks: int
    goals: list[Goal]
    wall_s: float


def engine_counts(engine: Child | None) -> dict | None:
    """The engine process's counters for SmolLM2 (its /health), None without one or when it does not answer."""
    if engine is None:
        return None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{engine.port}/health", timeout=10) as resp:
            return next(iter(json.load(resp)["engines"].values()), None)
    except (OSError, ValueError, KeyError):
        return None


def engine_line(before: dict | None, after: dict | None) -> str:
    """What the engine did during a phase: its decode steps and their mean batch, seconds in each kind of step."""
    if not before or not after:
        return ""
    d = {k: after[k] - before[k] for k in ("steps", "decode_seconds", "prefill_seconds", "prefill_tokens",
                                           "prefix_hits", "prefix_tokens", "tokens_total")}
    steps = max(d["steps"], 1)
    return (f"\n       engine: {d['steps']} decode steps, {d['tokens_total'] / steps:.1f} tokens each, "
            f"{1000 * d['decode_seconds'] / steps:.0f} ms each; {d['prefill_seconds']:.1f} s reading "
            f"{d['prefill_tokens']} prompt tokens; {d['prefix_hits']} prompts began from a stored one "
            f"({d['prefix_tokens']} tokens not read again)")


def start_engine(deadline: Deadline, threads: int | None, nice: int | None) -> Child:
    """The engine process of `make serve-class`, on a free loopback port, ready (its model loaded)."""
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               EXPLORER_ENGINE_IDLE_EXIT_S=str(ENGINE_IDLE_EXIT_S))
    if threads:
        env["EXPLORER_TORCH_THREADS"] = str(threads)
    engine = Child("engine", [sys.executable, "-m", "explorer.serving", "--model", "smollm2", "--port", str(port),
                              *([] if nice is None else ["--nice", str(nice)])],
                   Path(f"/tmp/load_classroom_engine_{port}.log"), env, port,
                   health_url=f"http://127.0.0.1:{port}/health")
    engine.start()
    try:
        engine.wait_ready(deadline.left(180))
    except BaseException:
        engine.stop()
        raise
    return engine


async def bench(args) -> Report:
    t_start = time.monotonic()
    deadline = Deadline(args.time_limit_s)
    extra = ["--server.disconnectedSessionTTL", str(args.ttl), *args.server_args]
    engine = start_engine(deadline, args.engine_threads, args.engine_nice) if args.engine_process else None
    env = {"EXPLORER_ENGINE_IDLE_EXIT_S": str(ENGINE_IDLE_EXIT_S)}
    if engine is not None:
        env["EXPLORER_ENGINE_URL"] = f"http://127.0.0.1:{engine.port}/v1"
    try:
        return await _bench(args, deadline, t_start, extra, env, engine)
    finally:
        if engine is not None:
            engine.stop()


async def _bench(args, deadline: Deadline, t_start: float, extra: list[str], env: dict | None,
                 engine: Child | None) -> Report:
    def engine_rss() -> str:
        return f"; engine process RSS {rss_bytes(engine.process.pid) / MB:.0f} MB" if engine else ""

    with serve(extra=extra, env=env) as server:
        url, pid = server.url, server.pid
        print(f"server {url} (pid {pid}), log {server.log}; RSS idle {rss_bytes(pid) / MB:.0f} MB; {load_average()}"
              + (f"; engine process {env['EXPLORER_ENGINE_URL']}, log {engine.log}" if engine else "")
              + f"; the engine forgets stored prompts {ENGINE_IDLE_EXIT_S:g} s after its last run", flush=True)
        warm = Student(url, -99, PROMPTS[0], 4, deadline)
        try:
            await warm.join()
            await warm.generate(OPEN_TIMEOUT_S)
            await warm.visit_attention()
        finally:
            await warm.close()
        print(f"after a warm-up visit: RSS {rss_bytes(pid) / MB:.0f} MB"
              + (f", problems: {warm.problems()}" if warm.problems() else ""), flush=True)
        idle = await idle_slider(url, deadline, 2 * len(N_HEAD_VALUES))
        print(f"attention slider at idle: p50 {_ms(percentile(idle, 50))} ms, p95 {_ms(percentile(idle, 95))} ms")
        solo = await solo_runs(url, args, deadline)
        for prompt, s in solo.items():
            print(f"solo {prompt[:40]!r}: first token {_ms(s.ttft or math.nan)} ms, {s.tokens} tokens, "
                  f"{s.tps or math.nan:.1f} tokens/s" + (f", {s.error}" if s.error else ""))
        solo_tps = statistics.median(s.tps for s in solo.values() if s.tps) if any(
            s.tps for s in solo.values()) else math.nan
        solo_answers = {p: s.answer for p, s in solo.items() if s.answer is not None}
        print(f"one student's solo rate (median of the prompts): {solo_tps:.1f} tokens/s", flush=True)

        phases = []
        for k, n in enumerate(args.n):
            await asyncio.sleep(ENGINE_IDLE_EXIT_S + 2.0)  # the engine forgets the prompts it read before
            before = engine_counts(engine)
            phase = await class_phase(url, pid, n, args, deadline, k + 1)
            phases.append(phase)
            print_phase(phase, solo_tps, engine_line(before, engine_counts(engine)))
            talk = answer_problems([(s.index, s.prompt, s.answer) for s in phase.students], solo_answers)
            print(f"       greedy answers: {'identical per prompt and to the solo answers' if not talk else ''}"
                  + "".join(f"\n         {x}" for x in talk[:5]))
            await wait_idle(pid, 2.0, deadline.left(60))

        print(f"{args.rounds} rounds of {args.round_size} students joining, generating {args.round_tokens} tokens, "
              f"moving a slider and leaving (TTL {args.ttl} s):", flush=True)
        rss, round_problems = await rss_rounds(url, pid, args, deadline)
        s_ = slope(rss)
        print(f"RSS after each round (MB): {' '.join(f'{x / MB:.0f}' for x in rss)}; slope {s_ / MB:+.2f} MB/round "
              f"({s_ / MB / max(1, args.round_size):+.2f} MB per student visit)")
        print(f"after the rounds{engine_rss() or ': (engine in the app process)'}")
        log_tracebacks = server.log.read_text(errors="replace").count("Traceback")
        if engine is not None:
            log_tracebacks += engine.log.read_text(errors="replace").count("Traceback")
    print(f"server log{'s (app and engine)' if engine else ''}: {log_tracebacks} tracebacks")

    last = phases[-1]
    talk = answer_problems([(s.index, s.prompt, s.answer) for s in last.students], solo_answers)
    results = goals(n=last.n, problems=len(last.problems()) + len(round_problems), total_tps=last.total_tps,
                    solo_tps=solo_tps, ttft_p95=percentile(last.ttfts, 95) if len(last.ttfts) == last.n else math.inf,
                    slider_p95=percentile(last.slider_times, 95) if last.slider_times else math.inf, rss=rss,
                    cross_talk=talk)
    print(f"goals (issue 12, set for N = {GOAL_N}; measured at N = {last.n}):")
    for g in results:
        print(f"  {'PASS' if g.ok else 'FAIL'}  {g.name}: {g.detail}")
    wall = time.monotonic() - t_start
    print(f"bench: {wall:.0f} s; {load_average()}")
    return Report(solo, solo_tps, phases, rss, round_problems, log_tracebacks, results, wall)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 30], help="class sizes, run in this order")
    parser.add_argument("--quick", action="store_true", help="N = 1, 3; 16 tokens; 3 rounds of 3 (development)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--probes", type=int, default=2, help="sessions moving the attention slider during the load")
    parser.add_argument("--think-s", type=float, default=0.3, help="a probe's pause after each answer")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-size", type=int, default=10)
    parser.add_argument("--round-tokens", type=int, default=8)
    parser.add_argument("--ttl", type=int, default=5, help="server.disconnectedSessionTTL (s)")
    parser.add_argument("--settle-s", type=float, default=22.0,
                        help="wait after a round before reading RSS: past the TTL and a quiet memory-janitor tick")
    parser.add_argument("--time-limit-s", type=float, default=2400.0, help="the whole bench's bound")
    parser.add_argument("--engine-process", action="store_true",
                        help="the engine in its own process (make serve-class's set-up) instead of the app's")
    parser.add_argument("--engine-threads", type=int, default=None,
                        help="with --engine-process: the engine's torch threads (EXPLORER_TORCH_THREADS, default 1)")
    parser.add_argument("--engine-nice", type=int, default=None,
                        help="with --engine-process: its --nice (default python -m explorer.serving's)")
    parser.add_argument("server_args", nargs="*", help="extra `streamlit run` options, after --")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.max_new_tokens, args.rounds, args.round_size = [1, 3], 16, 3, 3
    if not all(1 <= n <= 60 for n in args.n) or not 1 <= args.round_size <= 60 or not 2 <= args.rounds <= 30:
        parser.error("--n and --round-size must be in 1..60, --rounds in 2..30")
    if not 1 <= args.max_new_tokens <= 256 or not 1 <= args.round_tokens <= 256 or not 0 <= args.probes <= 10:
        parser.error("tokens must be in 1..256, --probes in 0..10")
    if args.engine_threads is not None and not (args.engine_process and 1 <= args.engine_threads <= 64):
        parser.error("--engine-threads goes with --engine-process, and is in 1..64")
    if args.engine_nice is not None and not (args.engine_process and 0 <= args.engine_nice <= 19):
        parser.error("--engine-nice goes with --engine-process, and is in 0..19")
    return args


def main(argv=None) -> int:
    report = asyncio.run(bench(parse_args(argv)))
    return 0 if all(g.ok for g in report.goals) else 1


if __name__ == "__main__":
    sys.exit(main())
