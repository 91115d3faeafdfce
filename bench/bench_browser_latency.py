"""What a student feels: in real Chromium, the time from a control change to the last chart redrawn, per lab and
control, beside a bare one-slider page (bench/_bare_page.py) measured in the same run (issue 11, section 4).

    .venv/bin/python bench/bench_browser_latency.py [--changes 5] [--labs attention,sizing]

Two servers on loopback (app.py, and the bare page), one Chromium with the browser tests' flags
(tests/browser/conftest.py). For each control the page is opened once, then the control is changed N times back
and forth (a slider or select-slider by the keyboard, a select or a radio by clicks, a number box by its step
buttons). Each change is timed inside the page, from the event that changed the control (its keydown or click
timestamp) to the later of
- script: Streamlit's run finished (data-test-script-state back to 'notRunning'), and
- drawn: the last DOM change inside any plotly chart (a MutationObserver; the page is waited on until nothing at
  all has changed for SETTLED_MS, so the last chart change is known to be the last).
Prints medians and the ratio to the bare page's median; no assertions (the goal, issue 11: attention at its
defaults under 0.4 s, at 32 tokens x 16 heads under 0.8 s). Wall times on a shared 2-core machine are noisy: read
the ratios, and compare only numbers measured in one run. The "page cpu" column is the CPU time of the page's main
thread per change (Chromium's ThreadTime metric, from before the change until the page settled): the browser's own
work, which other programs on a busy machine slow down far less than they slow the wall clock.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from st_server import serve  # noqa: E402

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 -- the browser tests' Chromium and flags

SETTLED_MS = 300  # as tests/browser/conftest.py: plotly has finished when the page has not changed for this long
PAGE_TIMEOUT_MS = 180_000  # a lab's first visit may load a model

# Page times: the event that changed a control, the end of each script run, the last change in a chart, the last
# change anywhere (for settling), and how many runs have started.
_WATCH = """
(() => {
  window.__bn = {event: 0, finished: 0, chart: 0, any: performance.now(), runs: 0};
  for (const type of ['keydown', 'click'])
    document.addEventListener(type, (e) => { window.__bn.event = e.timeStamp; }, true);
  const ATTR = 'data-test-script-state';
  new MutationObserver((records) => {
    const now = performance.now();
    window.__bn.any = now;
    const states = records.filter((r) => r.type === 'attributes' && r.attributeName === ATTR);
    states.forEach((r, i) => {
      const next = i + 1 < states.length ? states[i + 1].oldValue : r.target.getAttribute(ATTR);
      if (next === 'running' && r.oldValue !== 'running') window.__bn.runs += 1;
      if (next === 'notRunning' && r.oldValue === 'running') window.__bn.finished = now;
    });
    for (const r of records) {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      if (el && el.closest('[data-testid="stPlotlyChart"]')) { window.__bn.chart = now; break; }
    }
  }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true,
                        attributeOldValue: true});
})();
"""
_STATE = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"
_SETTLED = f"() => {_STATE} === 'notRunning' && performance.now() - window.__bn.any > {SETTLED_MS}"


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # page path and query, e.g. "/attention?lang=en"
    key: str  # the widget's key ("attention.n_head"): Streamlit gives its element the class st-key-<key>
    kind: str  # slider | select | radio | number


def _sentence_of(n_tokens: int) -> str:
    """An English sentence of exactly ``n_tokens`` tokens of the labs' tokenizer (counted, not assumed)."""
    from explorer.models.toy_tokens import tokenize

    words = ("the cat sat on a warm mat and watched the birds fly over green fields while the old dog "
             "slept near the door of the small house by the quiet river under a bright blue sky").split()
    text = ""
    for word in words * 3:
        candidate = f"{text} {word}".strip()
        n = len(tokenize(candidate, max_tokens=10_000))
        if n > n_tokens:
            continue
        text = candidate
        if n == n_tokens:
            return text
    raise RuntimeError(f"no sentence of {n_tokens} tokens")


def cases() -> list[Case]:
    big = f"/attention?lang=en&n_head=16&d_model=64&sentence={quote(_sentence_of(32))}"
    return [
        Case("bare page: slider", "/?", "value", "slider"),
        Case("attention: n_head", "/attention?lang=en", "attention.n_head", "slider"),
        Case("attention: mask", "/attention?lang=en", "attention.mask", "select"),
        Case("attention 32 tok x 16 heads: seed", big, "attention.seed", "number"),
        Case("attention 32 tok x 16 heads: mask", big, "attention.mask", "select"),
        Case("positional: n_pos", "/positional?lang=en", "positional.n_pos", "slider"),
        Case("positional: theta", "/positional?lang=en", "positional.theta", "slider"),
        Case("sizing: preset", "/sizing?lang=en", "sizing.preset", "select"),
        Case("sizing: chart", "/sizing?lang=en", "sizing.chart", "radio"),
        Case("internals: statistic", "/internals?lang=en", "internals.statistic", "radio"),
        Case("generation: temperature", "/generation?lang=en", "generation.temperature", "slider"),
    ]


def _container(page, key: str):
    cls = "st-key-" + "".join(c if c.isalnum() or c in "_-" else "-" for c in key.strip())
    return page.locator(f".{cls}").first


def _change(page, box, kind: str, forward: bool) -> None:
    """One change of the control, back or forth, as a student makes it."""
    if kind == "slider":
        thumb = box.get_by_role("slider").first
        thumb.focus()
        thumb.press("ArrowRight" if forward else "ArrowLeft")
    elif kind == "number":
        box.get_by_test_id("stNumberInputStepUp" if forward else "stNumberInputStepDown").click()
    elif kind == "radio":
        options = box.locator("label:has(input)")  # the options' labels, not the widget's own
        options.nth(1 if forward else 0).click()
    elif kind == "select":  # Streamlit 1.67's select is a combo box: focus it, open its list, click an option
        field = box.get_by_role("combobox")
        field.click()
        field.focus()
        page.keyboard.press("ArrowDown")
        options = page.get_by_role("option")
        options.first.wait_for(timeout=10_000)
        options.nth(1 if forward else 0).click()
    else:
        raise ValueError(kind)


def _changed(page, box, kind: str, forward: bool) -> None:
    """Change the control and wait until the run it started has finished and the page has settled. A starved
    Chromium now and then drops an input (tests/browser/conftest.py's rerun): then the change is made again, and
    timed from the repeated event."""
    for attempt in range(3):
        runs = page.evaluate("() => window.__bn.runs")
        _change(page, box, kind, forward)
        try:
            page.wait_for_function(f"() => window.__bn.runs > {runs}", timeout=10_000, polling=20)
            break
        except Exception:
            if attempt == 2:
                raise
    page.wait_for_function(_SETTLED, timeout=PAGE_TIMEOUT_MS, polling=50)


Times = tuple[list[float], list[float], list[float]]  # per change: script, drawn, page main-thread CPU


def _thread_s(cdp) -> float:
    """CPU seconds the page's main thread has used so far."""
    return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "ThreadTime")


def measure(browser, url: str, case: Case, changes: int) -> Times | str:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.add_init_script(_WATCH)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    try:
        page.goto(url + case.path)
        page.wait_for_function(_SETTLED, timeout=PAGE_TIMEOUT_MS, polling=50)
        box = _container(page, case.key)
        if not box.count():
            return f"no widget with key {case.key!r}"
        if page.locator('[data-testid="stException"]').count():
            return "the page shows an exception"
        if case.kind in ("radio", "select"):  # start from the first option, so that changes go 1 -> 0 -> 1 ...
            _change(page, box, case.kind, forward=False)
            page.wait_for_timeout(1000)
            page.wait_for_function(_SETTLED, timeout=PAGE_TIMEOUT_MS, polling=50)
        script, drawn, cpu = [], [], []
        for i in range(changes):
            before = _thread_s(cdp)
            _changed(page, box, case.kind, forward=i % 2 == 0)
            cpu.append(_thread_s(cdp) - before)
            t = page.evaluate("() => window.__bn")
            script.append((t["finished"] - t["event"]) / 1000)
            drawn.append((max(t["finished"], t["chart"]) - t["event"]) / 1000)
        if page.locator('[data-testid="stException"]').count():
            return "the page shows an exception"
        return script, drawn, cpu
    except Exception as e:  # a lab in the middle of a change: report it, measure the rest
        return f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=5, help="changes per control (median of these)")
    parser.add_argument("--labs", default="", help="comma-separated lab names to measure (default: all)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chosen = [c for c in cases() if c.path == "/?" or not args.labs
              or any(c.path.startswith(f"/{lab}") for lab in args.labs.split(","))]
    started, loads = time.monotonic(), os.getloadavg()
    results: dict[str, Times | str] = {}
    with serve("app.py") as app, serve("bench/_bare_page.py") as bare, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for case in chosen:
                url = bare.url if case.path == "/?" else app.url
                results[case.name] = measure(browser, url, case, args.changes)
                print(f"  measured {case.name} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        finally:
            browser.close()

    base = results.get("bare page: slider")
    base_drawn = statistics.median(base[1]) if isinstance(base, tuple) else None
    print(f"median of {args.changes} changes, Chromium {Path(CHROMIUM).name}, {os.cpu_count()} CPUs, "
          f"viewport 1366x768; ratio = drawn / bare page's drawn")
    print(f"{'lab: control':40s} {'script s':>9s} {'drawn s':>8s} {'ratio':>6s}  {'drawn min-max':>13s}"
          f" {'page cpu s':>10s}")
    for name, got in results.items():
        if isinstance(got, str):
            print(f"{name:40s} {'-':>9s} {'-':>8s} {'-':>6s}  ({got})")
            continue
        script, drawn, cpu = (statistics.median(g) for g in got)
        ratio = f"{drawn / base_drawn:.1f}" if base_drawn else "-"
        print(f"{name:40s} {script:9.3f} {drawn:8.3f} {ratio:>6s}  {min(got[1]):6.3f}-{max(got[1]):.3f} {cpu:10.3f}")
    print(f"total {time.monotonic() - started:.0f} s; load average {loads[0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end (other programs: wall times grow with it, page cpu much less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
