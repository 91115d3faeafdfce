"""Links to views of the tokenizer lab, opened in a fresh Chromium page: the widgets show the link's values, the
charts are drawn from them, and the address keeps them."""
import pytest

from explorer.i18n import t

from .conftest import expect, wait_for_app

pytestmark = pytest.mark.browser


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def sidebar_widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="stSidebar"] [data-testid="{testid}"]').filter(has_text=label)


def test_a_sonnets_link_opens_that_merge(page, app_url):
    page.goto(f"{app_url}/tokenizer?lang=en&corpus=shakespeare&merges=50&step=12&alphabet=char")
    wait_for_app(page)
    expect(sidebar_widget(page, "stSelectbox", t("en", "tokenizer.sidebar.corpus")).get_by_role("combobox")) \
        .to_have_value(t("en", "tokenizer.corpus.shakespeare"))
    radio = sidebar_widget(page, "stRadio", t("en", "tokenizer.sidebar.alphabet"))
    assert radio.locator("label").filter(has=page.locator("input:checked")).inner_text().strip() == \
        t("en", "tokenizer.alphabet.char")
    assert sidebar_widget(page, "stNumberInput", t("en", "tokenizer.sidebar.merges")).locator("input") \
        .input_value() == "50"
    slider = page.locator('[data-testid="stSlider"]').filter(has_text=t("en", "tokenizer.bpe.step"))
    assert slider.get_by_role("slider").get_attribute("aria-valuetext") == "12"
    expect(chart_titled(page, t("en", "tokenizer.viz.pairs_title", step=12))).to_have_count(1)
    assert "corpus=shakespeare" in page.url and "step=12" in page.url and "merges=50" in page.url


def test_a_chinese_link_opens_that_view_in_chinese(page, app_url):
    page.goto(f"{app_url}/tokenizer?lang=zh&step=3&d_model=512")
    wait_for_app(page)
    expect(page.locator("h1").first).to_have_text(t("zh", "tokenizer.title"))
    expect(page.get_by_role("tab", name=t("zh", "tokenizer.tab.build"))).to_have_attribute("aria-selected", "true")
    expect(chart_titled(page, t("zh", "tokenizer.viz.pairs_title", step=3))).to_have_count(1)
    page.get_by_role("tab", name=t("zh", "tokenizer.tab.trade")).click()
    expect(page.locator('[role="tabpanel"]:visible [data-testid="stNumberInput"] input')).to_have_value("512")
    assert "lang=zh" in page.url and "step=3" in page.url and "d_model=512" in page.url
