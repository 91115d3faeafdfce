"""The inference lab's quantization tab in Chromium: a link opens its view (the widgets show the link's values, the
histogram is drawn on the first screen at 1366x768 with presenter mode off and on, the address keeps them), in
English and in 中文."""
import pytest

from explorer.i18n import t

from .conftest import expect, wait_for_app

pytestmark = pytest.mark.browser
WAIT_MS = 240_000  # the first visit loads SmolLM2 and scans its 210 matrices for outliers on two shared cores


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def combobox(page, lang: str, name: str):
    return page.get_by_role("combobox", name=t(lang, f"inference_quant.control.{name}"), exact=True)


def hist_title_start(lang: str, layer: int, matrix: str) -> str:
    """The histogram's title up to its shape (plotly may wrap the rest)."""
    title = t(lang, "inference_quant.viz.hist_title", layer=layer, matrix=t(lang, f"inference_quant.matrix.{matrix}"),
              rows=0, cols=0)
    return title.split("(0")[0].split("（0")[0].strip()


@pytest.mark.parametrize("present", [False, True])
def test_a_two_bit_link_opens_that_view_with_the_histogram_on_the_first_screen(page, app_url, present):
    page.set_viewport_size({"width": 1366, "height": 768})
    query = "format=min&bits=2&granularity=channel&layer=27&matrix=gate" + ("&present=1" if present else "")
    page.goto(f"{app_url}/inference?lang=en&tab=quant&{query}")
    wait_for_app(page, WAIT_MS)
    expect(combobox(page, "en", "format")).to_have_value(t("en", "inference_quant.format.min"), timeout=WAIT_MS)
    expect(combobox(page, "en", "bits")).to_have_value("2")
    expect(combobox(page, "en", "granularity")).to_have_value(t("en", "inference_quant.granularity.channel"))
    expect(combobox(page, "en", "layer")).to_have_value("27")
    histogram = chart_titled(page, hist_title_start("en", 27, "gate"))
    expect(histogram).to_have_count(1)
    box = histogram.bounding_box()
    assert box is not None and box["y"] < 768, f"the histogram starts at {box} (below the first screen)"
    expect(chart_titled(page, t("en", "inference_quant.viz.memory_title"))).to_have_count(1)
    legend = t("en", "inference_quant.viz.after", fmt="2-bit")  # 'after 2-bit asymmetric (minimum), per channel'
    expect(histogram.get_by_text(legend.split(",")[0], exact=False).first).to_be_attached()
    for part in ("format=min", "bits=2", "granularity=channel", "layer=27", "matrix=gate"):
        assert part in page.url


def test_a_chinese_q4_1_link_shows_the_lossless_baseline(page, app_url):
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{app_url}/inference?lang=zh&tab=quant&format=q4_1&layer=3&matrix=q")
    wait_for_app(page, WAIT_MS)
    expect(combobox(page, "zh", "format")).to_have_value(t("zh", "inference_quant.format.q4_1"), timeout=WAIT_MS)
    expect(combobox(page, "zh", "bits")).to_be_disabled()
    histogram = chart_titled(page, hist_title_start("zh", 3, "q"))
    expect(histogram).to_have_count(1)
    box = histogram.bounding_box()
    assert box is not None and box["y"] < 768, f"the histogram starts at {box} (below the first screen)"
    expect(page.get_by_text(t("zh", "inference_quant.q4_1_again", rel=0.0, max_error=0.0)[:20])).to_be_visible()
    assert "format=q4_1" in page.url and "lang=zh" in page.url
