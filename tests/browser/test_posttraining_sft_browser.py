"""The post-training lab's SFT tab in Chromium: links open that conversation (the chart's title carries its
computed counts), in English and 中文, the token chart is on the first screen at 1366x768, and another tab chosen
by a click takes the SFT controls out of the address."""
import pytest

from explorer.i18n import t
from explorer.labs.posttraining_sft import SftSettings, run_sft
from explorer.sft import instruction_set
from tests.pretrained_models import ours

from .conftest import expect, rerun, wait_for_app

pytestmark = pytest.mark.browser


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def view(example: int, turns: int):
    return run_sft(SftSettings(example=example, turns=turns), ours("smollm2-135m")).result.view


def test_an_sft_link_opens_that_conversation_with_its_chart_on_the_first_screen(browser, app_url):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(f"{app_url}/posttraining?lang=en&tab=sft&example=12&turns=2")
        wait_for_app(page, 180_000)
        v = view(12, 2)
        chart = chart_titled(page, t("en", "posttraining_sft.fig.title", n=v.n_counted, total=v.n_predicted))
        expect(chart).to_have_count(1, timeout=60_000)
        assert chart.bounding_box()["y"] < 768, "the token chart starts below the first screen"
        prompt = instruction_set().train[12].prompt
        expect(page.get_by_role("combobox", name=t("en", "posttraining_sft.example"))).to_have_value(
            t("en", "posttraining_sft.example_label", n=13, prompt=prompt))
        assert "example=12" in page.url and "turns=2" in page.url
        other = page.locator('[data-testid="stButtonGroup"] button').filter(has_text=t("en", "posttraining.tab.grpo"))
        rerun(page, other.click, 180_000, again_if_lost=True)
        assert "tab=grpo" in page.url and "example=" not in page.url and "turns=" not in page.url
    finally:
        context.close()


def test_a_chinese_sft_link(page, app_url):
    page.goto(f"{app_url}/posttraining?lang=zh&tab=sft&example=30")
    wait_for_app(page, 180_000)
    expect(page.locator("h1").first).to_have_text(t("zh", "posttraining.title"))
    v = view(30, 1)
    expect(chart_titled(page, t("zh", "posttraining_sft.fig.title", n=v.n_counted, total=v.n_predicted))) \
        .to_have_count(1, timeout=60_000)
    expect(page.get_by_role("button", name=t("zh", "posttraining_sft.train"))).to_have_count(1, timeout=60_000)
    assert "lang=zh" in page.url and "example=30" in page.url


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_in_presenter_mode_the_token_chart_is_on_the_first_screen(browser, app_url, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    try:
        page.goto(f"{app_url}/posttraining?lang=zh&present=1&tab=sft")
        wait_for_app(page, 180_000)
        v = view(0, 1)
        chart = chart_titled(page, t("zh", "posttraining_sft.fig.title", n=v.n_counted, total=v.n_predicted))
        expect(chart).to_have_count(1, timeout=60_000)
        assert chart.bounding_box()["y"] < size[1], "the token chart starts below the first screen"
    finally:
        context.close()
