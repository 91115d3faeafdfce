"""The post-training lab's ``losses`` and ``grpo`` tabs in Chromium: a losses link opens that pair with its token
chart on the first screen and a one-update DPO run draws its margin/KL chart; a Chinese GRPO link opens its group
and the PPO/DPO/GRPO table for the linked model."""
import pytest

from explorer.i18n import t

from .conftest import expect, rerun, wait_for_app

pytestmark = pytest.mark.browser


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def test_a_losses_link_and_a_short_dpo_run(browser, app_url):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(f"{app_url}/posttraining?lang=en&tab=losses&pair=en-add&beta=0.5&steps=1&trainable_layers=1")
        wait_for_app(page, 240_000)
        chart = chart_titled(page, t("en", "posttraining_losses.fig.tokens_title"))
        expect(chart).to_have_count(1, timeout=120_000)
        assert chart.bounding_box()["y"] < 768, "the token chart starts below the first screen"
        expect(page.get_by_role("combobox", name=t("en", "posttraining_losses.pair"))).to_have_value("What is 7 + 5?")
        assert "pair=en-add" in page.url and "beta=0.5" in page.url
        rerun(page, page.get_by_role("button", name=t("en", "posttraining_losses.train")).click, 240_000)
        run_chart = chart_titled(page, t("en", "posttraining_losses.run_title", n=1, beta=0.5, lr="0.0001", layers=1))
        expect(run_chart).to_have_count(1, timeout=120_000)
        # the run ends (one update on ten pairs) and the terms above are then the trained policy's
        expect(page.get_by_text(t("en", "posttraining_losses.trained_note", n=1))).to_have_count(1, timeout=400_000)
    finally:
        context.close()


def test_a_chinese_grpo_link(page, app_url):
    page.goto(f"{app_url}/posttraining?lang=zh&tab=grpo&problem=23%2B58&group=4&compare_model=Llama-2-70B")
    wait_for_app(page, 240_000)
    expect(page.locator("h1").first).to_have_text(t("zh", "posttraining.title"))
    expect(page.get_by_text(t("zh", "posttraining_grpo.compare_header"))).to_have_count(1, timeout=60_000)
    expect(page.get_by_role("button", name=t("zh", "posttraining_grpo.run"))).to_have_count(1, timeout=60_000)
    expect(page.get_by_role("combobox", name=t("zh", "posttraining_grpo.compare_model"))).to_have_value("Llama-2-70B")
    assert "group=4" in page.url and "compare_model=Llama-2-70B" in page.url and "lang=zh" in page.url
