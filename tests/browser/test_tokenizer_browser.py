"""The tokenizer lab in a real Chromium: step through five merges with the forward button, and compare two real
tokenizers on a Chinese sentence typed into the sidebar."""
import pytest

from explorer.i18n import t
from explorer.labs.tokenizer import TokenizerSettings, train
from explorer.models.real_tokenizers import tokenize

from .conftest import ARTIFACTS, enter_text, expect, rerun, wait_for_app

pytestmark = pytest.mark.browser


def chart_titled(page, title: str):
    return page.locator('[data-testid="stPlotlyChart"]').filter(has=page.locator(".gtitle", has_text=title))


def test_step_through_five_merges(page, app_url):
    page.goto(f"{app_url}/tokenizer?lang=en")
    wait_for_app(page)
    tok = train("tangshi", "", TokenizerSettings().merges, "byte")
    forward = page.get_by_role("button", name="▶")
    for step in range(2, 7):
        rerun(page, forward.click)  # every press counts: never repeated
        expect(chart_titled(page, t("en", "tokenizer.viz.pairs_title", step=step))).to_have_count(1)
        done = tok.steps[step - 1]
        # the merge's sentence names the new id and its count, computed from the trainer here
        expect(page.get_by_text(f"(new id {done.new_id})", exact=False).first).to_be_visible()
        expect(page.get_by_text(f"{done.count:,} times", exact=False).first).to_be_visible()
    slider = page.locator('[data-testid="stSlider"]').filter(has_text=t("en", "tokenizer.bpe.step"))
    assert slider.get_by_role("slider").get_attribute("aria-valuetext") == "6"
    assert "step=6" in page.url
    page.screenshot(path=str(ARTIFACTS / "tokenizer_step6.png"), full_page=True)


def test_two_real_tokenizers_on_a_chinese_sentence(page, app_url):
    page.goto(f"{app_url}/tokenizer?lang=en")
    wait_for_app(page)
    sentence = "今天天气很好，我们去公园散步。"
    box = page.locator('[data-testid="stSidebar"] [data-testid="stTextInput"]').filter(
        has_text=t("en", "tokenizer.sidebar.sentence")).locator("input")
    enter_text(page, box, sentence, key="Enter")
    page.get_by_role("tab", name=t("en", "tokenizer.tab.real")).click()  # tabs switch in the browser alone
    panel = page.locator('[role="tabpanel"]:visible')
    gpt2, qwen = tokenize("gpt2", sentence), tokenize("qwen", sentence)
    assert qwen.n_tokens < gpt2.n_tokens
    for result in (gpt2, qwen):
        row = panel.locator('[data-testid="stMarkdownContainer"]').filter(has_text=f"{result.title} ·")
        expect(row.first).to_contain_text(t("en", "tokenizer.real.count", n=result.n_tokens))
        expect(panel.get_by_text(t("en", "tokenizer.real.ids", ids=" ".join(map(str, result.ids))))).to_have_count(1)
    expect(chart_titled(page, t("en", "tokenizer.viz.cost_title"))).to_have_count(1)
    assert "sentence=" in page.url
    page.screenshot(path=str(ARTIFACTS / "tokenizer_real.png"), full_page=True)
