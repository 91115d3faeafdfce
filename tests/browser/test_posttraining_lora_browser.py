"""Links to the post-training lab's LoRA tab, opened in a fresh Chromium page: the widgets show the link's values,
the charts are drawn from them (their titles name the model), the address keeps them; and at a laptop's 1366x768
the first chart starts on the first screen."""
from urllib.parse import parse_qs, urlparse

import pytest

from explorer.i18n import t

from .conftest import ARTIFACTS, expect, wait_for_app

pytestmark = pytest.mark.browser
SLOW = 30_000  # ms: a shared 2-core machine under load draws two plotly charts in seconds, not in the default 5


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def rank_value(page) -> str:
    return page.locator('[data-testid="stSlider"]').filter(has_text=t("en", "posttraining_lora.rank")) \
        .get_by_role("slider").get_attribute("aria-valuetext")


def test_a_llama_link_opens_that_view(page, app_url):
    page.goto(f"{app_url}/posttraining?lang=en&tab=lora&preset=LLaMA-7B&rank=32&targets=q,k,v,o")
    wait_for_app(page)
    assert rank_value(page) == "32"
    expect(page.locator('[data-testid="stSelectbox"]').filter(has_text=t("en", "posttraining_lora.preset"))
           .get_by_role("combobox")).to_have_value("LLaMA-7B")
    targets = page.locator('[data-testid="stMultiSelect"]').filter(has_text=t("en", "posttraining_lora.targets"))
    for name in ("q (W_q)", "k (W_k)", "v (W_v)", "o (W_o)"):
        expect(targets).to_contain_text(name)
    for key in ("trainable_title", "memory_title"):
        title = t("en", f"posttraining_lora.fig.{key}", model="LLaMA-7B")
        expect(chart_titled(page, title)).to_have_count(1, timeout=SLOW)
    query = parse_qs(urlparse(page.url).query)
    assert query["rank"] == ["32"] and query["preset"] == ["LLaMA-7B"] and query["targets"] == ["q,k,v,o"]


def test_a_chinese_link_on_a_laptop_screen(browser, app_url):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    try:
        page.goto(f"{app_url}/posttraining?lang=zh&tab=lora&preset=GPT-3%20175B&rank=4")
        wait_for_app(page)
        title = t("zh", "posttraining_lora.fig.trainable_title", model="GPT-3 175B")
        first = chart_titled(page, title)
        expect(first).to_have_count(1, timeout=SLOW)
        expect(page.get_by_text(t("zh", "posttraining_lora.finetune_header"))).to_have_count(1, timeout=SLOW)
        page.evaluate("() => window.scrollTo(0, 0)")
        top = first.bounding_box()["y"]
        assert top < 768, f"the first chart starts at y = {top}, below the first screen"
        query = parse_qs(urlparse(page.url).query)
        assert query["lang"] == ["zh"] and query["rank"] == ["4"] and query["preset"] == ["GPT-3 175B"]
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "test_posttraining_lora_laptop.png"))
        context.close()
