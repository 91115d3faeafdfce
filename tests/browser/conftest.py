"""Real-browser fixtures: one Streamlit server on a free localhost port and Debian's Chromium driven by playwright.

Nothing here skips: CI installs chromium (make browser), and a missing browser must fail the run.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from st_server import serve  # noqa: E402 -- the bench's server starter, one for benches and tests
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]


@contextmanager
def _serve(log_name: str):
    """A Streamlit server for app.py on a free localhost port, stopped on exit (bench/st_server.py's serve)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with serve("app.py", log=ARTIFACTS / log_name, ready_s=90) as server:
        yield server.url


@pytest.fixture(scope="session")
def app_url():
    with _serve("server.log") as url:
        yield url


@pytest.fixture
def fresh_app_url():
    """A server nobody has visited yet: the first request decides how Streamlit routes, so some tests need one."""
    with _serve("fresh-server.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


# When the page is ready for the next action, read from the DOM (Streamlit 1.67; its status widget no longer says
# "Running"):
# - Streamlit marks its root element with the state of the script run: data-test-script-state on
#   [data-testid="stApp"] goes 'initial' -> 'running' -> 'notRunning' on a first visit, and 'notRunning' ->
#   'running' -> 'notRunning' after an interaction. Right after a click it still reads 'notRunning' for ~100 ms,
#   so a test that acted waits for the run its action started: __stRunsStarted counts the runs that began.
# - 'notRunning' means the server sent everything, not that the browser has drawn it: on a busy machine plotly
#   went on rewriting the page for up to 5 s, and a click in that time could be lost. __stLastChange is when the
#   DOM last changed; the page has settled once it has not changed for SETTLED_MS.
# - The attribute misses a run when React draws its start and its end in one frame: a starved Chromium on a busy CI
#   machine once counted no run for a committed text, retried, and then committed an unchanged value, which starts
#   none. So the server's word counts too: it sends a new_session ForwardMsg (field 4) at the start of every run,
#   fragment runs included, and __stServerRuns counts those on the app's websocket. runs_started takes the larger.
_WATCHERS = """
(() => {
  window.__stRunsStarted = 0;
  window.__stServerRuns = 0;
  const topLevelFields = (b) => {  // the field numbers of a protobuf message's top level, in order
    const fields = [];
    let i = 0;
    const varint = () => {
      let v = 0, shift = 0, x;
      do { x = b[i++]; v += (x & 0x7f) * 2 ** shift; shift += 7; } while (x & 0x80 && i < b.length);
      return v;
    };
    while (i < b.length) {
      const key = varint(), wireType = key % 8;
      fields.push(Math.floor(key / 8));
      if (wireType === 0) varint();
      else if (wireType === 2) { const n = varint(); i += n; }  // not `i += varint()`: that adds to i's old value
      else if (wireType === 1) i += 8;
      else if (wireType === 5) i += 4;
      else break;
    }
    return fields;
  };
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        if (e.data instanceof ArrayBuffer && topLevelFields(new Uint8Array(e.data)).includes(4)) {
          window.__stServerRuns += 1;
        }
      });
    }
  };
  window.__stLastChange = performance.now();
  const ATTR = 'data-test-script-state';
  new MutationObserver((records) => {
    window.__stLastChange = performance.now();
    // One callback may carry both 'notRunning' -> 'running' and 'running' -> 'notRunning' of a quick run, so each
    // record's new value is the next record's old value (the attribute itself only tells the latest).
    const states = records.filter((r) => r.type === 'attributes' && r.attributeName === ATTR);
    states.forEach((r, i) => {
      const next = i + 1 < states.length ? states[i + 1].oldValue : r.target.getAttribute(ATTR);
      if (next === 'running' && r.oldValue !== 'running') window.__stRunsStarted += 1;
    });
  }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true,
                        attributeOldValue: true});
})();
"""
SETTLED_MS = 300
_SCRIPT_STATE = "document.querySelector('[data-testid=\"stApp\"]')?.getAttribute('data-test-script-state')"


@pytest.fixture
def page(browser, request) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(_WATCHERS)
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def _ensure_watchers(page: Page) -> None:
    """Install the watchers on a page whose context was made without them (a test with its own viewport)."""
    if page.evaluate("() => typeof window.__stLastChange") != "number":
        page.evaluate(f"() => {{ {_WATCHERS} }}")


def wait_for_app(page: Page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished running the script ('initial' on a fresh page is not finished) and the
    browser has drawn what it sent, then fail if the page shows an exception. After an interaction use ``rerun``
    instead: it waits for the run the action asked for, which may not have begun yet."""
    _ensure_watchers(page)
    try:
        page.wait_for_function(f"() => {_SCRIPT_STATE} === 'notRunning'"
                               f" && performance.now() - window.__stLastChange > {SETTLED_MS}", timeout=timeout_ms)
    except PlaywrightTimeout as e:
        state = page.evaluate(f"() => [{_SCRIPT_STATE}, performance.now() - window.__stLastChange]")
        raise AssertionError(f"the page did not settle in {timeout_ms} ms (script state {state[0]!r}, "
                             f"last change {state[1]:.0f} ms ago)") from e
    assert_no_exception(page)


_RUNS_STARTED = "Math.max(window.__stRunsStarted, window.__stServerRuns ?? 0)"


def runs_started(page: Page) -> int:
    return page.evaluate(f"() => {_RUNS_STARTED}")


LOST_MS = 10_000  # an action's run starts within 0.1-3 s, even with Chromium starved on a busy 2-core machine


def rerun(page: Page, action: Callable[[], object], timeout_ms: int = 60_000, *, again_if_lost: bool = False) -> None:
    """Do ``action`` (a click, a key press), wait until the script run it triggers has started and finished and the
    page has settled, and fail if the page then shows an exception.

    ``again_if_lost`` for an action that is safe to repeat (choosing an option, a sidebar link, a key press towards
    a target value the caller checks): a starved Chromium now and then drops a click (seen about once in ten at a
    load average of 12 on 2 cores), so when no run has started after LOST_MS the action is done again, twice at
    most. Never for a button whose every press counts (Generate, Next token)."""
    before = runs_started(page)
    tries = 3 if again_if_lost else 1
    for attempt in range(1, tries + 1):
        action()
        try:
            page.wait_for_function(f"() => {_RUNS_STARTED} > {before}",
                                   timeout=LOST_MS if attempt < tries else timeout_ms)
            break
        except PlaywrightTimeout as e:
            if attempt < tries:
                continue
            state = page.evaluate(f"() => {_SCRIPT_STATE}")
            if not again_if_lost:
                raise AssertionError(f"the action started no script run (script state {state!r})") from e
            # Seen once in CI after the class-layout tests had opened every lab: three clicks over 80 s and the
            # page never sent a run. A reload gives the page a new connection; the action is then done once more.
            page.reload()
            wait_for_app(page, timeout_ms)
            before = runs_started(page)
            action()
            try:
                page.wait_for_function(f"() => {_RUNS_STARTED} > {before}", timeout=timeout_ms)
            except PlaywrightTimeout as again:
                raise AssertionError(f"the action started no script run ({tries} tries and one after a reload; "
                                     f"script state before the reload {state!r})") from again
    wait_for_app(page, timeout_ms)


def click_until(target, done: Callable[[], bool], timeout_ms: int = LOST_MS) -> None:
    """Click ``target`` for something that happens in the browser alone (an expander opens, an input takes the
    focus: no script run to wait for) until ``done()`` holds, checking once per drawn frame; a dropped click (see
    ``rerun``) is clicked again, a click that worked never is, since ``done`` sees its effect."""
    for _ in range(3):
        if done():
            return
        target.click()
        deadline = time.monotonic() + timeout_ms / 1000
        while not done() and time.monotonic() < deadline:
            target.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(true)))")
    assert done(), f"three clicks on {target} did not have their effect"


def enter_text(page: Page, box, text: str, key: str = "Control+Enter", timeout_ms: int = 60_000) -> None:
    """Type ``text`` into a text box and commit it with ``key`` (Enter for a one-line input, Control+Enter for a text
    area), waiting for the run it starts. The fill is redone with every retry: a commit that Chromium dropped may also
    have lost the typed value. Committing the value the page already holds starts no run, and a lost try may have
    committed ``text`` (a box bound to the URL shows it again after ``rerun``'s reload), so a box that shows ``text``
    first commits ``text`` with a space after it."""
    def action() -> None:
        if box.input_value() == text:
            box.fill(text + " ")
            box.press(key)
        box.fill(text)
        box.press(key)
    rerun(page, action, timeout_ms, again_if_lost=True)


def assert_no_exception(page: Page) -> None:
    errors = page.locator('[data-testid="stException"]')
    if errors.count():
        raise AssertionError("Streamlit shows an exception: " + errors.first.inner_text()[:2000])


def open_lab(page: Page, app_url: str, name: str) -> None:
    """Open a lab through the router, by its page file's name ('attention_lab') or its URL path ('attention')."""
    from explorer.ui.nav import LABS

    lab = next(lab for lab in LABS if name in (lab.url_path, lab.path.removeprefix("labs/").removesuffix(".py")))
    page.goto(f"{app_url}/{lab.url_path}")
    wait_for_app(page)


__all__ = ["wait_for_app", "rerun", "enter_text", "click_until", "assert_no_exception", "open_lab", "expect"]
