"""Links to the generation lab, opened in a fresh Chromium page: the controls show the link's settings, and a run
made from them draws its figures (in Chinese from a ?lang=zh link)."""
import re

import pytest

from explorer.i18n import t

from .conftest import expect, rerun, wait_for_app

pytestmark = pytest.mark.browser

SLOW = 180_000  # a busy 2-core machine, and possibly the first visitor of the server


def _open(page, app_url, query: str) -> None:
    page.goto(f"{app_url}/generation?{query}")
    wait_for_app(page, SLOW)


def test_a_sampling_link_opens_its_settings_and_steps_with_them(page, app_url):
    _open(page, app_url, "lang=en&model=tiny-gpt&temperature=1.2&top_k=20&max_new_tokens=40&seed=7")
    expect(page.get_by_role("heading", name="Generation lab", exact=True)).to_be_visible()
    expect(page.get_by_role("slider", name="Temperature T")).to_have_attribute("aria-valuetext", "1.20")
    expect(page.get_by_role("slider", name="top-k (0 = off)")).to_have_attribute("aria-valuetext", "20")
    expect(page.get_by_role("slider", name="Max new tokens")).to_have_attribute("aria-valuetext", "40")
    expect(page.get_by_role("spinbutton", name="Seed")).to_have_value("7")
    expect(page.get_by_role("combobox", name="Model")).to_have_value("tiny-gpt (random weights: untrained)")
    rerun(page, page.locator('[data-testid="stMain"]').get_by_role("button", name="Next token").click, SLOW)
    expect(page.get_by_text("Paused after 1 tokens", exact=False)).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_contain_text("Token 1: picked")
    assert "temperature=1.2" in page.url and "top_k=20" in page.url and "max_new_tokens=40" in page.url


def test_a_chinese_link_opens_in_chinese_and_generates_in_chinese(page, app_url):
    _open(page, app_url, "lang=zh&model=tiny-llama&chat=0&prompt=%E4%BB%8A%E5%A4%A9%E5%A4%A9%E6%B0%94&greedy=1"
                         "&max_new_tokens=5")
    expect(page.get_by_role("heading", name=t("zh", "generation.title"), exact=True)).to_be_visible()
    expect(page.get_by_role("textbox", name="提示词")).to_have_value("今天天气")
    expect(page.get_by_role("radio", name="贪心解码")).to_be_checked()
    expect(page.get_by_role("radio", name="纯续写")).to_be_checked()
    expect(page.get_by_role("slider", name="最多生成词元数")).to_have_attribute("aria-valuetext", "5")
    rerun(page, page.locator('[data-testid="stMain"]').get_by_role("button", name="生成", exact=True).click, SLOW)
    expect(page.get_by_text(re.compile(r"^生成了 5 个词元后结束"))).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]').first).to_contain_text("第 5 个词元：以概率")
    assert "lang=zh" in page.url and "greedy=1" in page.url
