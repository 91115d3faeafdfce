"""The inference lab's metrics tab in Chromium: a link opens its view (the widgets show the link's values, the loss
strip is drawn on the first screen, the address keeps them), in English and in 中文, and the student's own pair typed
into the page is scored."""
import urllib.parse

import pytest

from explorer.i18n import t

from .conftest import enter_text, expect, wait_for_app

pytestmark = pytest.mark.browser
WAIT_MS = 240_000  # the first visit loads SmolLM2 and reads eight texts on two shared cores


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def sidebar_widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="stSidebar"] [data-testid="{testid}"]').filter(has_text=label)


def test_a_window_link_opens_that_view_with_the_loss_strip_on_the_first_screen(page, app_url):
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{app_url}/inference?lang=en&tab=metrics&example=residual_en&window=64&stride=16")
    wait_for_app(page, WAIT_MS)
    window = sidebar_widget(page, "stSlider", t("en", "inference_metrics.name.window")).get_by_role("slider")
    stride = sidebar_widget(page, "stSlider", t("en", "inference_metrics.name.stride")).get_by_role("slider")
    assert window.get_attribute("aria-valuetext") == "64" and stride.get_attribute("aria-valuetext") == "16"
    example = page.get_by_role("combobox", name=t("en", "inference_metrics.name.example"), exact=True)
    expect(example).to_have_value(t("en", "inference_metrics.example.residual_en"))
    strip = chart_titled(page, t("en", "inference_metrics.fig.strip_title", ppl=0, loss=0, n=0).split(":")[0])
    expect(strip).to_have_count(1)
    expect(chart_titled(page, t("en", "inference_metrics.fig.compare_title"))).to_have_count(1)
    box = strip.bounding_box()
    assert box is not None and box["y"] < 768, f"the loss strip starts at {box} (below the first screen)"
    assert "example=residual_en" in page.url and "window=64" in page.url and "stride=16" in page.url


def test_a_chinese_link_with_an_own_pair_scores_what_is_typed(page, app_url):
    reference_text = urllib.parse.quote("注意力机制")
    page.goto(f"{app_url}/inference?lang=zh&tab=metrics&pair=own&reference={reference_text}")
    wait_for_app(page, WAIT_MS)
    expect(page.get_by_text(t("zh", "inference_metrics.overlap.header"))).to_be_visible()
    reference = page.get_by_role("textbox", name=t("zh", "inference_metrics.name.reference"), exact=True)
    expect(reference).to_have_value("注意力机制", timeout=WAIT_MS)  # a first visit may run the script twice
    hypothesis = page.get_by_role("textbox", name=t("zh", "inference_metrics.name.hypothesis"), exact=True)
    enter_text(page, hypothesis, "注意力机制", timeout_ms=WAIT_MS)
    # an exact copy of the reference: every precision 1, BLEU 100, zh tokenizer (one token per character)
    expect(chart_titled(page, t("zh", "inference_metrics.fig.precision_title", bleu=100.0, bp=1.0))).to_have_count(1)
    expect(page.get_by_text(t("zh", "inference_metrics.tokenize.zh"))).to_be_visible()
    assert "hypothesis=" in page.url and "lang=zh" in page.url
