"""Untrusted config.json text in the sizing lab, in a real Chromium (issue 17 items 3 and 4): a Markdown image in a
value is shown as text and never fetched; an uploaded file of brackets is answered with a sentence."""
import json

import pytest

from explorer.presets import REAL_MODELS

from .conftest import assert_no_exception, enter_text, expect, open_lab, wait_for_app

pytestmark = pytest.mark.browser

TRAP = "127.0.0.1:9"  # nothing listens on port 9: a request there can only come from interpreted student text


def _paste_mode(page, app_url, requested):
    page.on("request", lambda r: requested.append(r.url))
    open_lab(page, app_url, "sizing")
    page.get_by_text("Paste or upload config.json", exact=True).click()
    wait_for_app(page)


def _main_html(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_html()


def test_markdown_and_html_in_a_pasted_config_are_shown_as_typed(page, app_url):
    requested: list[str] = []
    _paste_mode(page, app_url, requested)
    value = f"![x](http://{TRAP}/md-img.png) **bold** <img src=http://{TRAP}/tag.png>"
    box = page.locator("textarea").first
    enter_text(page, box, json.dumps(dict(REAL_MODELS["GPT-2 small"].hf, activation_function=value)))
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="activation_function").first
    expect(alert).to_be_visible()
    shown = alert.inner_text().replace("\u2060", "")
    assert value in shown, shown
    assert alert.locator("img, strong, a").count() == 0
    page.wait_for_timeout(500)
    assert not [u for u in requested if TRAP in u], requested
    assert TRAP not in "".join(page.eval_on_selector_all("img", "els => els.map(e => e.src)"))


def test_an_uploaded_file_of_brackets_gets_a_sentence(page, app_url):
    requested: list[str] = []
    _paste_mode(page, app_url, requested)
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
        files=[{"name": "config.json", "mimeType": "application/json", "buffer": b"[" * 1000 + b"]" * 1000}])
    wait_for_app(page)
    expect(page.locator('[data-testid="stAlert"]').filter(has_text="nested").first).to_be_visible()
    assert_no_exception(page)
    assert "Traceback" not in _main_html(page) and ".py" not in page.locator('[data-testid="stMain"]').inner_text()
