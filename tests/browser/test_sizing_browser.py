"""The sizing lab in a real Chromium: load a preset, read the exact total, open every tab."""
import pytest

from explorer.presets import REAL_MODELS

from .conftest import ARTIFACTS, click_until, enter_text, expect, open_lab, rerun

pytestmark = pytest.mark.browser


def _total(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Exact parameters").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _pick(page, label: str, option: str) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    field = box.get_by_role("combobox")
    click_until(box, lambda: field.evaluate("e => e === document.activeElement"))
    page.keyboard.type(option)
    rerun(page, lambda: page.keyboard.press("Enter"), again_if_lost=True)


def _drawn(page) -> None:
    """Wait until the visible tab's charts are drawn and the fonts loaded, so a screenshot shows them."""
    panel = page.locator('[role="tabpanel"]:visible')
    expect(panel.first).to_be_visible()
    for chart in panel.locator('[data-testid="stPlotlyChart"]').all():
        expect(chart.locator(".main-svg").first).to_be_attached()
    page.evaluate("() => document.fonts.ready.then(() => true)")


def test_load_a_preset_and_read_the_total(page, app_url):
    open_lab(page, app_url, "sizing")
    assert _total(page) == f"{REAL_MODELS['GPT-2 small'].total:,}"
    _pick(page, "Preset", "Llama-2-70B")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Exact parameters").first) \
        .to_contain_text(f"{REAL_MODELS['Llama-2-70B'].total:,}")
    assert page.locator(".js-plotly-plot").count() >= 1
    page.set_viewport_size({"width": 1400, "height": 3200})  # Streamlit scrolls inside; show the whole tab
    _drawn(page)
    page.screenshot(path=str(ARTIFACTS / "sizing_tab_0.png"), full_page=True)
    for i, tab in enumerate(("Compare models", "Memory", "Compute", "The course's table, checked")):
        page.get_by_role("tab", name=tab).click()  # tabs switch in the browser: no script run
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        _drawn(page)
        page.screenshot(path=str(ARTIFACTS / f"sizing_tab_{i + 1}.png"), full_page=True)
    expect(page.get_by_text("Every flagged cell explained").first).to_be_visible()


def test_bad_config_json_shows_a_message(page, app_url):
    open_lab(page, app_url, "sizing")
    choice = page.locator('[data-testid="stRadio"]').get_by_text("Paste or upload config.json", exact=True)
    rerun(page, choice.click, again_if_lost=True)
    box = page.locator("textarea").first
    expect(box).to_be_visible()
    enter_text(page, box, '{"model_type": "t5"}')
    expect(page.locator('[data-testid="stAlert"]').filter(has_text="not supported").first).to_be_visible()
