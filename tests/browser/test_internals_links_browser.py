"""Links to a view of the internals lab, each opened in a fresh browser page (issue 11, part 2): the widgets and
the charts show exactly that view, one of them in Chinese and on the other model."""
import re

import pytest

from .conftest import assert_no_exception, expect, wait_for_app

pytestmark = pytest.mark.browser


def open_link(page, app_url, query: str) -> None:
    page.goto(f"{app_url}/internals?{query}")
    wait_for_app(page, timeout_ms=240_000)  # the first visitor waits for the weights to load
    assert_no_exception(page)


def test_a_smollm2_link_opens_its_view(page, app_url):
    open_link(page, app_url, "layer=7&head=4&statistic=previous&ablated=L3.H2,L10.H0")
    expect(page.get_by_role("heading", name="Zoom: layer 7, head 4")).to_be_visible(timeout=60_000)
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Layer").get_by_role("slider")
    expect(slider).to_have_value("7")
    expect(page.get_by_role("radio", name="On the previous token")).to_be_checked()
    expect(page.locator(".gtitle", has_text=re.compile(r"^layer 7$"))).to_have_count(1)
    expect(page.locator(".gtitle", has_text="layer 7, head 4")).to_have_count(1)
    expect(page.locator(".legendtext", has_text="after (zeroed: L3.H2, L10.H0)")).to_have_count(1)
    assert "layer=7" in page.url and "ablated=L3.H2%2CL10.H0" in page.url.replace(",", "%2C")


def test_a_minilm_link_in_chinese_opens_its_view(page, app_url):
    open_link(page, app_url, "lang=zh&model=minilm-l6&layer=5&head=11&statistic=self")
    expect(page.get_by_role("heading", name="模型内部实验", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="放大：第 5 层，第 11 个头")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("combobox", name="模型", exact=True)).to_have_value("MiniLM-L6（BERT 编码器）")
    expect(page.get_by_role("radio", name="看自己")).to_be_checked()
    expect(page.locator(".gtitle", has_text=re.compile(r"^第 5 层$"))).to_have_count(1)
    expect(page.locator('[data-testid="stPlotlyChart"] .g-xtitle', has_text="层").first).to_be_visible()
