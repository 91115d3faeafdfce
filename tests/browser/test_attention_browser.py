"""The attention lab and the positional lab in a real Chromium: move the heads slider, flip the encoding."""
import re

import pytest

from .conftest import click_until, expect, rerun, wait_for_app

pytestmark = pytest.mark.browser


def open_from_home(page, app_url, title: str) -> None:
    """Open a lab the way a student does: the home page, then its link in the sidebar."""
    page.goto(app_url)
    wait_for_app(page)
    rerun(page, page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title).click, again_if_lost=True)
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()


def grid_panel_titles(page) -> list[str]:
    """Panel titles of the first chart on the page (the head grid): 'head 1', ... ('▶' marks the zoomed one)."""
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.locator("text.annotation-text").first.wait_for()
    texts = [t.removeprefix("▶ ") for t in chart.locator("text.annotation-text").all_text_contents()]
    return [t for t in texts if t.startswith("head")]


def test_heads_slider_changes_the_grid(page, app_url):
    open_from_home(page, app_url, "Attention lab")
    assert len(grid_panel_titles(page)) == 4

    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="n_head").get_by_role("slider")
    for _ in range(12):  # 4 -> 8 heads, one key press at a time, each after the rerun of the one before
        if thumb.get_attribute("aria-valuetext") == "8":
            break
        thumb.focus()
        rerun(page, lambda: thumb.press("ArrowRight"), again_if_lost=True)
    expect(thumb).to_have_attribute("aria-valuetext", "8")
    expect(page.get_by_text(re.compile(r"8 heads of d_k = d_v = 8"))).to_be_visible()
    titles = grid_panel_titles(page)
    assert len(titles) == 8, titles
    assert "head 8" in titles


def test_flipping_the_encoding(page, app_url):
    open_from_home(page, app_url, "Positional encoding lab")
    expect(page.get_by_role("heading", name=re.compile("Sinusoidal"))).to_be_visible()

    rerun(page, page.locator('[data-testid="stRadio"]').get_by_text("RoPE", exact=True).click, again_if_lost=True)
    expect(page.get_by_role("heading", name=re.compile("RoPE: rotary"))).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]').filter(has_text="vs relative distance")).to_have_count(1)

    rerun(page, page.locator('[data-testid="stRadio"]').get_by_text("None", exact=True).click, again_if_lost=True)
    expect(page.get_by_text(re.compile("Same pattern, permuted"))).to_be_visible()

    # switch an encoding on in the shuffle experiment: the equality breaks
    # A first click on a selectbox only focuses its input (Streamlit 1.67): type the option and press Enter.
    field = page.get_by_role("combobox", name="Now switch on")
    click_until(page.locator('[data-testid="stSelectbox"]').filter(has_text="Now switch on"),
                lambda: field.evaluate("e => e === document.activeElement"))
    page.keyboard.type("Sinusoidal")
    rerun(page, lambda: page.keyboard.press("Enter"), again_if_lost=True)
    expect(page.get_by_text(re.compile("With Sinusoidal the patterns differ"))).to_be_visible()


# A chart whose colour bar or axis labels need more room than its margins is drawn twice by Plotly (automargin),
# which doubled the browser's work on every slider move (bench/bench_browser_latency.py). Plotly's own record:
# _size is the margin it ended up with, margin what the figure asked for.
REDRAWN_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(d => {
  const fl = d._fullLayout, m = fl.margin, z = fl._size;
  return ['l', 'r', 't', 'b'].filter(s => Math.abs(z[s] - m[s]) > 1)
    .map(s => `${fl.title.text.replace(/<[^>]*>/g, '')}: ${s} ${Math.round(m[s])} -> ${z[s]}`);
})"""


ZH_WINDOW = ("lang=zh&n_head=8&mask=sliding_window&window=3&sentence="
             "%E6%88%91%E7%88%B1%E8%87%AA%E7%84%B6%E8%AF%AD%E8%A8%80%E5%A4%84%E7%90%86")
# The step chart on the page (the second chart: the head grid is the first), by its title without markup.
STEP_CHART_JS = """() => { const d = document.querySelectorAll('.js-plotly-plot')[1];
  return d && d._fullLayout ? d._fullLayout.title.text.replace(/<[^>]*>/g, '') : null; }"""


@pytest.mark.parametrize("query", ["lang=en", ZH_WINDOW, "lang=en&present=1", f"{ZH_WINDOW}&present=1"],
                         ids=["en", "zh-window", "en-presenter", "zh-window-presenter"])
def test_no_chart_is_drawn_twice_to_make_room(page, app_url, query):
    """Every step of the walk (▶ from the first to the last), with presenter mode's 18 px text too."""
    from explorer.i18n import t
    from explorer.ui.attention import STEPS

    page.goto(f"{app_url}/attention?{query}")
    wait_for_app(page)
    drawn_twice, seen = [], []
    forth = page.get_by_role("button", name="▶")
    for i, step in enumerate(STEPS):
        if i:
            rerun(page, forth.click)
        picked = page.locator(".st-key-attention-step button[aria-checked='true'], "
                              ".st-key-attention-step [aria-pressed='true']")
        expect(picked.first).to_have_text(t("zh" if "zh" in query else "en", f"attention.steps_pick.{step}"))
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 2", timeout=60_000)
        wait_for_app(page)
        seen.append(page.evaluate(STEP_CHART_JS))
        drawn_twice += page.evaluate(REDRAWN_JS)
    assert len(seen) == len(STEPS) and None not in seen, seen
    assert drawn_twice == []
