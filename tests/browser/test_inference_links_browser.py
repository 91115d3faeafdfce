"""Links to views of the inference lab, opened in a fresh Chromium page at a laptop's 1366x768: the tab and its
widgets show the link's values, the charts are drawn from them with the first one on the first screen, and the
address keeps them."""
import pytest

from explorer.i18n import t

from .conftest import _WATCHERS, assert_no_exception, expect, wait_for_app

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}
_TOP = """e => { let top = e.getBoundingClientRect().top + window.scrollY;
  for (let p = e.parentElement; p; p = p.parentElement) top += p.scrollTop;
  return top; }"""


@pytest.fixture
def laptop(browser):
    context = browser.new_context(viewport=LAPTOP)
    context.add_init_script(_WATCHERS)
    page = context.new_page()
    yield page
    context.close()


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="{testid}"]').filter(has_text=label)


def slider_value(page, label: str) -> str:
    return widget(page, "stSlider", label).first.get_by_role("slider").get_attribute("aria-valuetext")


def selected_tab(page) -> str:
    return page.locator('[data-testid="stButtonGroup"] button[aria-checked="true"], '
                        '[data-testid="stButtonGroup"] button[kind$="Active"]').first.inner_text().strip()


def first_chart_top(page) -> float:
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.wait_for(state="attached", timeout=60_000)
    return chart.evaluate(_TOP)


def test_a_kv_cache_link_opens_that_view_on_the_first_screen(laptop, app_url):
    page = laptop
    page.goto(f"{app_url}/inference?lang=en&tab=kvcache&preset=Llama-2-70B&batch=8&block_size=8&at_step=60")
    wait_for_app(page, timeout_ms=120_000)
    assert_no_exception(page)
    assert selected_tab(page) == t("en", "inference.tab.kvcache")
    title = t("en", "inference_kvcache.viz.memory_title", model="Llama-2-70B", batch=8, dtype="bf16")
    expect(chart_titled(page, title)).to_have_count(1)
    assert first_chart_top(page) < LAPTOP["height"], "the memory chart is below the first screen"
    expect(page.get_by_role("combobox", name=t("en", "inference_kvcache.control.preset"), exact=True)).to_have_value(
        "Llama-2-70B")
    assert slider_value(page, t("en", "inference_kvcache.control.batch")) == "8"
    assert slider_value(page, t("en", "inference_kvcache.control.block_size")) == "8"
    expect(chart_titled(page, t("en", "inference_kvcache.viz.paging_title"))).to_have_count(1)
    expect(page.locator(".gtitle").filter(has_text="step 60").first).to_be_attached()
    for part in ("tab=kvcache", "preset=Llama-2-70B", "batch=8", "block_size=8", "at_step=60"):
        assert part in page.url, page.url
    page.screenshot(path="tests/artifacts/inference-kvcache-1366.png")


def test_a_chinese_batching_link_opens_that_view_in_chinese(laptop, app_url):
    page = laptop
    page.goto(f"{app_url}/inference?lang=zh&tab=batching&new_tokens=4")
    wait_for_app(page, timeout_ms=120_000)
    assert_no_exception(page)
    expect(page.locator("h1").first).to_have_text(t("zh", "inference.title"))
    assert selected_tab(page) == t("zh", "inference.tab.batching")
    expect(chart_titled(page, t("zh", "inference_batching.viz.title"))).to_have_count(1)
    assert first_chart_top(page) < LAPTOP["height"], "the throughput chart is below the first screen"
    assert slider_value(page, t("zh", "inference_batching.control.new_tokens")) == "4"
    expect(page.get_by_role("button", name=t("zh", "inference_batching.measure"))).to_be_visible()
    expect(page.get_by_text(t("zh", "inference_batching.bound.header"))).to_be_attached()
    assert "lang=zh" in page.url and "tab=batching" in page.url and "new_tokens=4" in page.url
    page.screenshot(path="tests/artifacts/inference-batching-zh-1366.png")
