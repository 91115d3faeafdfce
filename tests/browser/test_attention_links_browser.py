"""A link to the attention lab opened in a fresh Chromium page shows exactly its view (issue 11): the widgets hold the
link's values, the charts are drawn for them, and the address still carries them; in English and in Chinese."""
import re

import pytest

from explorer.i18n import t

from .conftest import expect, wait_for_app

pytestmark = pytest.mark.browser
# A widget may show its own default for a moment after the run has settled (seen: the d_model box read 1, then 128
# within 0.5 s, with no script run in between; an input's value is not a DOM change the settle check sees).
SHOWN_MS = 30_000


def sidebar_widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="stSidebar"] [data-testid="{testid}"]').filter(has_text=label).first


def expect_slider(page, label: str, value: str) -> None:
    expect(sidebar_widget(page, "stSlider", label).get_by_role("slider")).to_have_attribute(
        "aria-valuetext", value, timeout=SHOWN_MS)


def choice(page, label: str):
    """A select box's field, which shows the chosen option."""
    return page.locator('[data-testid="stSidebar"]').get_by_role("combobox", name=label, exact=True)


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator("text.gtitle", has_text=title))


def test_a_link_opens_eight_heads_with_a_sliding_window(page, app_url):
    page.goto(f"{app_url}/attention?n_head=8&mask=sliding_window&window=3&lang=en")
    wait_for_app(page, 120_000)
    expect(page.get_by_role("heading", name="Attention lab", exact=True)).to_be_visible()
    expect_slider(page, "n_head (number of heads)", "8")
    expect_slider(page, "Window width w", "3")
    expect(choice(page, "Mask")).to_have_value(t("en", "attention.mask.sliding_window"), timeout=SHOWN_MS)
    expect(choice(page, "n_kv_head (key/value heads)")).to_have_value("8 · MHA", timeout=SHOWN_MS)
    expect(chart_titled(page, "Attention weights of all 8 heads")).to_have_count(1)
    expect(page.locator('[data-testid="stAlert"]')).to_have_count(0)  # nothing in the link was refused
    assert re.search(r"[?&]n_head=8(&|$)", page.url) and "mask=sliding_window" in page.url


def test_a_chinese_link_opens_multi_query_attention_with_a_prefix(page, app_url):
    page.goto(f"{app_url}/attention?d_model=128&n_head=2&n_kv_head=1&mask=prefix&prefix_len=3&lang=zh")
    wait_for_app(page, 120_000)
    expect(page.get_by_role("heading", name="注意力实验", exact=True)).to_be_visible()
    d_model = sidebar_widget(page, "stNumberInput", t("zh", "attention.sidebar.d_model")).locator("input")
    expect(d_model).to_have_value("128", timeout=SHOWN_MS)
    expect_slider(page, t("zh", "attention.sidebar.n_head"), "2")
    expect_slider(page, t("zh", "attention.sidebar.prefix_len"), "3")
    expect(choice(page, t("zh", "attention.sidebar.n_kv_head"))).to_have_value("1 · MQA", timeout=SHOWN_MS)
    expect(choice(page, t("zh", "attention.sidebar.mask"))).to_have_value(t("zh", "attention.mask.prefix"),
                                                                           timeout=SHOWN_MS)
    expect(chart_titled(page, t("zh", "attention.grid.title", n_head=2))).to_have_count(1)
    expect(page.get_by_text(t("zh", "attention.steps.x_title"), exact=True)).to_be_visible()
    for part in ("d_model=128", "n_head=2", "n_kv_head=1", "mask=prefix", "prefix_len=3", "lang=zh"):
        assert part in page.url, (part, page.url)
