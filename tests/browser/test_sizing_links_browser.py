"""Links to the sizing lab in a fresh Chromium page (issue 11): the link's view, widgets and chart, in its language."""
import pytest

from explorer.i18n import t
from explorer.presets import REAL_MODELS

from .conftest import expect, wait_for_app

pytestmark = pytest.mark.browser


def _metric(page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).first.locator(
        '[data-testid="stMetricValue"]')


def test_a_link_to_llama_2_70b_opens_it(page, app_url):
    page.goto(f"{app_url}/sizing?preset=Llama-2-70B&zero_stage=3&lang=en")
    wait_for_app(page)
    expect(page.get_by_role("combobox", name=t("en", "sizing.preset_label"))).to_have_value("Llama-2-70B")
    expect(_metric(page, t("en", "sizing.metric.exact"))).to_have_text(f"{REAL_MODELS['Llama-2-70B'].total:,}")
    from explorer.sizing import human_count
    title = t("en", "sizing.breakdown_title", model="Llama-2-70B", n=human_count(REAL_MODELS["Llama-2-70B"].total))
    expect(page.locator(".js-plotly-plot .gtitle").first).to_have_text(title)
    assert "zero_stage=3" in page.url and "preset=Llama-2-70B" in page.url


def test_a_link_to_a_custom_architecture_opens_in_chinese(page, app_url):
    page.goto(f"{app_url}/sizing?lang=zh&source=fields&preset=LLaMA-7B&n_layer=16&n_head=16&n_kv_head=4")
    wait_for_app(page)
    expect(page.locator("h1").first).to_contain_text(t("zh", "sizing.title"))
    layers = page.locator('[data-testid="stNumberInput"]').filter(has_text=t("zh", "sizing.field.n_layer.label"))
    expect(layers.locator("input").first).to_have_value("16")
    heads = page.locator('[data-testid="stNumberInput"]').filter(has_text=t("zh", "sizing.field.n_head.label"))
    expect(heads.locator("input").first).to_have_value("16")
    expect(page.get_by_role("tab", name=t("zh", "sizing.tab.breakdown"))).to_be_visible()
    chart_title = page.locator(".js-plotly-plot .gtitle").first
    expect(chart_title).to_contain_text(t("zh", "sizing.edited_label", preset="LLaMA-7B"))
    expect(chart_title).to_contain_text("参数")
