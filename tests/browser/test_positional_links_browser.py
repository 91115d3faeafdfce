"""Links to views of the positional-encoding lab, opened in a fresh Chromium page: the widgets show the link's
values, the charts are drawn from them, and the address keeps them."""
import pytest

from explorer.i18n import render, t
from explorer.positional_facts import alibi_rule

from .conftest import expect, wait_for_app

pytestmark = pytest.mark.browser


def sidebar_widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="stSidebar"] [data-testid="{testid}"]').filter(has_text=label)


def checked_option(page, label: str) -> str:
    radio = sidebar_widget(page, "stRadio", label)
    return radio.locator("label").filter(has=page.locator("input:checked")).inner_text().strip()


def slider_value(page, label: str) -> str:
    return sidebar_widget(page, "stSlider", label).get_by_role("slider").get_attribute("aria-valuetext")


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(
        has=page.locator(".gtitle", has_text=title))


def test_a_rope_link_opens_that_view(page, app_url):
    page.goto(f"{app_url}/positional?lang=en&positional=rope&theta=100&d_head=16&pair=5")
    wait_for_app(page)
    assert checked_option(page, t("en", "positional.sidebar.positional")) == "RoPE"
    assert slider_value(page, t("en", "positional.sidebar.pair")) == "5"
    assert slider_value(page, t("en", "positional.sidebar.theta")) == "100"
    assert slider_value(page, "d_head") == "16"
    expect(chart_titled(page, "Pair 5:")).to_have_count(1)
    expect(chart_titled(page, t("en", "positional.viz.distance_title"))).to_have_count(1)
    expect(page.get_by_text(t("en", "positional.viz.curve_ones", theta=100.0)).first).to_be_attached()
    assert "positional=rope" in page.url and "pair=5" in page.url and "theta=100" in page.url


def test_a_chinese_alibi_link_opens_that_view_in_chinese(page, app_url):
    page.goto(f"{app_url}/positional?lang=zh&positional=alibi&alibi_heads=6")
    wait_for_app(page)
    expect(page.locator("h1").first).to_have_text(t("zh", "positional.title"))
    assert checked_option(page, t("zh", "positional.sidebar.positional")) == t("zh", "positional.encoding.alibi")
    assert slider_value(page, t("zh", "positional.sidebar.alibi_heads")) == "6"
    expect(chart_titled(page, render(alibi_rule(6).title, "zh"))).to_have_count(1)
    expect(chart_titled(page, t("zh", "positional.viz.alibi_title"))).to_have_count(1)
    assert "lang=zh" in page.url and "alibi_heads=6" in page.url
