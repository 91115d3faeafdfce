"""The inference lab's speculative-decoding tab in Chromium: a link opens its view (the widgets show the link's values,
the Run button on the first screen, the address keeps them); one click runs both decodings and shows them identical,
with the rounds coloured and the speed chart; a Chinese link shows the tab in 中文."""
import pytest

from explorer.i18n import t

from .conftest import expect, rerun, wait_for_app

pytestmark = pytest.mark.browser
WAIT_MS = 240_000  # the first visit loads SmolLM2; both runs decode on two shared cores


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def slider(page, label: str):
    return page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")


def test_a_link_opens_its_view_and_one_click_runs_both_decodings(page, app_url):
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{app_url}/inference?lang=en&tab=speculative&k=3&ngram=2&max_new_tokens=12")
    wait_for_app(page, WAIT_MS)
    assert slider(page, "k").first.get_attribute("aria-valuetext") == "3"
    assert slider(page, t("en", "inference_speculative.control.ngram")).get_attribute("aria-valuetext") == "2"
    draft = page.get_by_role("combobox", name=t("en", "inference_speculative.control.draft"), exact=True)
    expect(draft).to_have_value(t("en", "inference_speculative.draft.prompt_lookup"))
    run = page.get_by_role("button", name=t("en", "inference_speculative.run"))
    box = run.bounding_box()
    assert box is not None and box["y"] < 768, f"the Run button is at {box} (below the first screen)"
    rerun(page, run.click, WAIT_MS)
    expect(page.get_by_text(t("en", "inference_speculative.metric.yes"))).to_be_visible()
    expect(chart_titled(page, "Tokens per second: plain greedy")).to_have_count(1)
    expect(page.locator('span[title^="round 1:"]').first).to_be_visible()  # the coloured rounds
    assert "k=3" in page.url and "ngram=2" in page.url and "max_new_tokens=12" in page.url


def test_a_chinese_early_exit_link(page, app_url):
    page.goto(f"{app_url}/inference?lang=zh&tab=speculative&draft=early_exit&exit_layers=20")
    wait_for_app(page, WAIT_MS)
    draft = page.get_by_role("combobox", name=t("zh", "inference_speculative.control.draft"), exact=True)
    expect(draft).to_have_value(t("zh", "inference_speculative.draft.early_exit"))
    label = t("zh", "inference_speculative.control.exit_layers", n_layer=30)
    assert slider(page, label).get_attribute("aria-valuetext") == "20"
    expect(page.get_by_role("button", name=t("zh", "inference_speculative.run"))).to_be_visible()
    expect(page.get_by_text(t("zh", "inference_speculative.press_run"))).to_be_visible()
    assert "draft=early_exit" in page.url and "exit_layers=20" in page.url and "lang=zh" in page.url
