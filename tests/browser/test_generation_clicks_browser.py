"""The generation lab in a real Chromium under impatient hands: every button clicked twice in quick succession,
Streamlit's own Stop at any moment, and Markdown / HTML in the prompt and in the model's answer (issue 17 items 2,
3, 8; issue 9 section 4). After each, the page shows no exception, the text so far and the controls."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page

from .conftest import assert_no_exception, expect

pytestmark = pytest.mark.browser

SLOW = 180_000  # the first visitor waits for SmolLM2's weights; a busy 2-core machine writes slowly
FORBIDDEN_HOST = "127.0.0.1:9"  # the payloads point here: nothing may ever request it


def settle(page: Page, timeout_s: float = SLOW / 1000) -> None:
    """Wait until no script run is in progress: stApp's data-test-script-state reads notRunning on three polls in
    a row (a click's rerun can take a moment to start)."""
    deadline, calm = time.monotonic() + timeout_s, 0
    while calm < 3:
        state = page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state")
        calm = calm + 1 if state == "notRunning" else 0
        assert time.monotonic() < deadline, f"the app is still {state!r}"
        page.wait_for_timeout(200)


def open_lab(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/generation")
    expect(page.get_by_role("heading", name="Generation lab", exact=True)).to_be_visible(timeout=SLOW)
    settle(page)


def button(page: Page, name: str):
    return page.locator('[data-testid="stMain"]').get_by_role("button", name=name, exact=True)


def output_text(page: Page) -> str:
    return page.locator(".st-key-gen_text").inner_text(timeout=30_000).strip()


def assert_whole(page: Page, *, text_needed: bool = True) -> str:
    """No exception; the controls and the output box with its text on the page. Returns the text shown."""
    assert_no_exception(page)
    for name in ("Generate", "Next token", "Reset"):
        expect(button(page, name)).to_be_visible(timeout=10_000)
    expect(page.locator(".st-key-gen_output")).to_be_visible(timeout=10_000)
    text = output_text(page)
    if text_needed:
        assert text, "the output box is empty"
    return text


def choose(page: Page, option: str) -> None:
    page.locator('[data-testid="stRadio"]').get_by_text(option, exact=True).click()
    settle(page)


def max_new_tokens(page: Page, key: str) -> None:
    slider = page.get_by_role("slider", name="Max new tokens")
    slider.focus()
    slider.press(key)
    settle(page)


def double(page: Page, first: str, second: str, pause_ms: int) -> None:
    button(page, first).click()
    page.wait_for_timeout(pause_ms)
    button(page, second).click()
    settle(page)


def test_every_button_clicked_twice_quickly(page, app_url):
    open_lab(page, app_url)
    choose(page, "Greedy")
    for first, second, pause_ms in [
        ("Generate", "Generate", 300), ("Generate", "Generate", 1000), ("Generate", "Generate", 0),
        ("Next token", "Next token", 0), ("Next token", "Next token", 300),
        ("Generate", "Next token", 300), ("Next token", "Generate", 300),
        ("Next token", "Reset", 100), ("Generate", "Reset", 500), ("Reset", "Reset", 0),
    ]:
        double(page, first, second, pause_ms)
        text = assert_whole(page)
        if second == "Reset":
            assert text.startswith("Press Generate"), text
        else:
            expect(page.get_by_text(re.compile(r"^(Finished|Paused|Stopped) after \d+ tokens"))).to_be_visible()


def test_streamlit_stop_at_any_moment_keeps_the_text_and_the_controls(page, app_url):
    open_lab(page, app_url)
    choose(page, "Greedy")
    stop = page.locator('[data-testid="stStatusWidget"]').get_by_role("button", name="Stop")
    # The default question: a short answer, so some stops land while it streams, some as the page draws the
    # finished run (the moment that blanked the page), some after the end (then there is nothing to stop).
    for delay_ms in (600, 900, 1200, 1500, 1800, 2400):
        button(page, "Generate").click()
        page.wait_for_timeout(delay_ms)
        if stop.is_visible():
            try:
                stop.click(timeout=2_000)
            except Exception:  # noqa: BLE001 (the run ended between the check and the click)
                pass
        settle(page)
        assert_whole(page)
    # A long answer: the stop certainly lands mid-stream; the text so far stays, and Next token carries on.
    page.get_by_role("textbox", name="Prompt").fill("Write a long story about a dragon who learns to read.")
    max_new_tokens(page, "End")
    button(page, "Generate").click()
    expect(page.get_by_text(re.compile(r"token [3-9]\d* of at most"))).to_be_visible(timeout=SLOW)
    stop.click(timeout=30_000)
    settle(page)
    written = assert_whole(page)
    assert written and "no visible text yet" not in written
    button(page, "Next token").click()
    settle(page)
    assert_whole(page)
    assert output_text(page).startswith(written)
    expect(page.get_by_text(re.compile(r"^(Stopped|Paused) after \d+ tokens"))).to_be_visible()


def test_markdown_in_the_prompt_and_in_the_answer_stays_text(page, app_url):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_lab(page, app_url)
    choose(page, "Greedy")
    # SmolLM2 repeats it verbatim (greedy, top-2 probability gap above 0.25 at every step): the answer itself
    # carries a Markdown image.
    payload = "![x](http://127.0.0.1:9/x.png)"
    box = page.get_by_role("textbox", name="Prompt")
    box.fill(f"Repeat exactly: {payload}")
    box.press("Control+Enter")
    settle(page)
    button(page, "Generate").click()
    expect(page.get_by_text(re.compile(r"^Finished after \d+ tokens"))).to_be_visible(timeout=SLOW)
    settle(page)
    # Shown as the characters it is (safe_text puts an invisible word joiner after "http" against auto-links).
    assert payload in assert_whole(page).replace("\u2060", "")
    # The prompt echoed in plain completion, and the token row, with an HTML tag as well.
    choose(page, "Plain completion")
    box.fill('<img src="http://127.0.0.1:9/prompt.png"> and ![y](http://127.0.0.1:9/prompt2.png)')
    box.press("Control+Enter")
    settle(page)
    max_new_tokens(page, "Home")
    button(page, "Generate").click()
    expect(page.get_by_text(re.compile(r"^Finished after 1 tokens"))).to_be_visible(timeout=SLOW)
    settle(page)
    echo = page.locator(".st-key-gen_output").get_by_text(re.compile("^Plain completion of: "))
    assert echo.inner_text().replace("\u2060", "").startswith('Plain completion of: <img src="http://127.0.0.1:9/')
    assert_whole(page)
    assert not page.locator('[data-testid="stMain"] img[src*="127.0.0.1:9"]').count()
    assert not [url for url in requested if FORBIDDEN_HOST in url], requested
