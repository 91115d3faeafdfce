"""Links to views of the training lab, opened in a fresh Chromium page: the widgets show the link's values, the
charts are drawn from them, and the address keeps them."""
import pytest

from explorer.i18n import t
from explorer.labs.training import TrainingSettings

from .conftest import expect, wait_for_app

pytestmark = pytest.mark.browser


def sidebar_widget(page, testid: str, label: str):
    return page.locator(f'[data-testid="stSidebar"] [data-testid="{testid}"]').filter(has_text=label)


def checked_option(page, label: str) -> str:
    radio = sidebar_widget(page, "stRadio", label)
    return radio.locator("label").filter(has=page.locator("input:checked")).inner_text().strip()


def slider_value(page, label: str) -> str:
    return sidebar_widget(page, "stSlider", label).get_by_role("slider").first.get_attribute("aria-valuetext")


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def test_a_post_ln_link_opens_that_view(page, app_url):
    page.goto(f"{app_url}/training?lang=en&norm_position=post&norm=rmsnorm&lr=0.03&warmup=0&n_layer=3&steps=120")
    wait_for_app(page)
    assert checked_option(page, t("en", "training.norm_position")) == t("en", "training.norm_position_name.post")
    assert checked_option(page, t("en", "training.norm")) == t("en", "training.norm_name.rmsnorm")
    assert slider_value(page, t("en", "training.n_layer")) == "3"
    expect(chart_titled(page, t("en", "training.fig.loss_title"))).to_have_count(1)
    expect(chart_titled(page, t("en", "training.fig.lr_title"))).to_have_count(1)
    expect(page.get_by_text(t("en", "training.optimiser.schedule_caption", lr=0.03, warmup=0, steps=120,
                              floor=0.03 * TrainingSettings().min_lr_ratio))).to_be_visible()
    for part in ("norm_position=post", "lr=0.03", "warmup=0", "n_layer=3", "steps=120"):
        assert part in page.url, page.url


def test_a_chinese_bpe_link_opens_that_view_in_chinese(page, app_url):
    page.goto(f"{app_url}/training?lang=zh&tokenizer=bpe&merges=300&corpus=shakespeare")
    wait_for_app(page)
    expect(page.locator("h1").first).to_have_text(t("zh", "training.title"))
    assert checked_option(page, t("zh", "training.tokenizer")) == t("zh", "training.tokenizer_name.bpe")
    assert checked_option(page, t("zh", "training.corpus")) == t("zh", "training.corpus_name.shakespeare")
    assert slider_value(page, t("zh", "training.merges")) == "300"
    expect(chart_titled(page, t("zh", "training.fig.loss_title"))).to_have_count(1)
    expect(chart_titled(page, t("zh", "training.fig.batch_title"))).to_have_count(1)
    assert "lang=zh" in page.url and "merges=300" in page.url and "tokenizer=bpe" in page.url
