"""The generation lab in a real Chromium: SmolLM2 writes into the page, the Stop button stops it mid-stream, and
step mode adds one token per click."""
import re

import pytest

from explorer.models.token_labels import part_label
from tests.greedy import COUNTING_ANSWER, COUNTING_PROMPT

from .conftest import enter_text, expect, rerun, runs_started, wait_for_app

pytestmark = pytest.mark.browser

SLOW = 180_000  # the first visitor waits for SmolLM2's weights; a busy 2-core machine writes slowly


def open_lab(page, app_url):
    """As a student does: the home page, then the lab's link in the sidebar."""
    page.goto(app_url)
    wait_for_app(page)
    rerun(page, page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Generation lab").click, SLOW,
          again_if_lost=True)
    expect(page.get_by_role("heading", name="Generation lab", exact=True)).to_be_visible()


def _radio(page, name):
    rerun(page, page.locator('[data-testid="stRadio"]').get_by_text(name, exact=True).click, SLOW, again_if_lost=True)


def test_greedy_answer_streams_into_the_page(page, app_url):
    open_lab(page, app_url)
    _radio(page, "Greedy")
    # The default chat prompt's greedy answer has no near tie (test_generation_page checks its margins), so it is
    # the same text on any CPU.
    rerun(page, page.get_by_role("button", name="Generate").click, SLOW)
    expect(page.get_by_text(re.compile(r"^Finished after \d+ tokens"))).to_be_visible()
    expect(page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Paris").first).to_be_visible()
    expect(page.get_by_role("tab", name="Token by token")).to_be_visible()
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts.nth(1)).to_be_visible(timeout=30_000)  # the candidates and the attention of the last token
    expect(charts.first).to_contain_text("Paris")


def test_stop_button_stops_mid_stream(page, app_url):
    open_lab(page, app_url)
    # Only the Stop button can end this run before 256 tokens, however fast the machine (see COUNTING_PROMPT).
    _radio(page, "Plain completion")
    _radio(page, "Greedy")
    prompt = page.get_by_role("textbox", name="Prompt")
    enter_text(page, prompt, COUNTING_PROMPT, timeout_ms=SLOW)
    slider = page.get_by_role("slider", name="Max new tokens")
    slider.focus()
    rerun(page, lambda: slider.press("End"), SLOW, again_if_lost=True)
    expect(slider).to_have_attribute("aria-valuetext", "256")
    before = runs_started(page)
    page.get_by_role("button", name="Generate").click()
    expect(page.get_by_text(re.compile(r"token \d+ of at most 256"))).to_be_visible(timeout=SLOW)
    stop = page.locator('[data-testid="stMain"]').get_by_role("button", name="Stop")
    expect(stop).to_be_enabled()
    rerun(page, stop.click, SLOW, again_if_lost=True)  # a second Stop stops nothing more: safe to repeat
    assert runs_started(page) >= before + 2, "Stop started a run of its own, interrupting the generation"
    stopped = page.get_by_text(re.compile(r"Stopped after (\d+) tokens"))
    expect(stopped).to_be_visible()
    n = int(re.search(r"Stopped after (\d+)", stopped.inner_text()).group(1))
    assert 1 <= n < 256
    # What was written up to the stop stays on the page: the start of the count, cut where the stop came.
    shown = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=re.compile(r"^\s*5(,|\s*$)")).first
    text = shown.inner_text().strip()
    assert COUNTING_ANSWER.startswith(text), text
    assert len(text) < len(COUNTING_ANSWER)  # 256 tokens would have reached 69


def test_step_mode_adds_one_token_per_click(page, app_url):
    open_lab(page, app_url)
    _radio(page, "Plain completion")
    enter_text(page, page.get_by_role("textbox", name="Prompt"), "今天天气", timeout_ms=SLOW)
    for n in (1, 2, 3):
        rerun(page, page.get_by_role("button", name="Next token").click, SLOW)
        expect(page.get_by_text(f"Paused after {n} tokens")).to_be_visible()
    attention = page.locator('[data-testid="stPlotlyChart"]').nth(1)
    expect(attention).to_be_visible(timeout=30_000)
    ticks = attention.locator(".xtick text").all_text_contents()
    assert ticks[:2] == [part_label("今", 1, 2), part_label("今", 2, 2)], ticks  # the context the newest token attended to, as tokens
