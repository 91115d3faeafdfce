"""The app opens in a real Chromium, shows the home page without an exception (every lab: test_classroom_browser.py);
the presenter switch."""
import pytest

from explorer.i18n import t
from explorer.ui.nav import LABS

from .conftest import rerun, wait_for_app

pytestmark = pytest.mark.browser


def test_home_page_renders(page, app_url):
    page.goto(app_url)
    wait_for_app(page)
    assert page.get_by_role("heading", name="Transformer Explorer").first.is_visible()
    assert "Computing on" in page.content()


def test_a_lab_address_opened_first_goes_through_the_router(page, fresh_app_url):
    """A student following a link to a lab on a server nobody has visited gets the whole app around it."""
    lab = LABS[0]
    page.goto(f"{fresh_app_url}/{lab.url_path}")
    wait_for_app(page)
    assert page.locator("h1").first.inner_text().strip() == lab.title
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_text("Home").count() >= 1 and nav.get_by_text(lab.title).count() >= 1
    assert page.get_by_text("Page not found").count() == 0


def test_the_presenter_switch_is_kept_in_the_link_and_raises_the_text(page, app_url):
    page.goto(f"{app_url}/?lang=en")
    wait_for_app(page)
    def root_px() -> float:
        return page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")

    normal = root_px()
    switch = page.locator('[data-testid="stSidebar"]').get_by_text(t("en", "common.present"), exact=True)
    rerun(page, switch.click, again_if_lost=True)
    page.wait_for_function("() => new URLSearchParams(location.search).get('present') === '1'")
    assert root_px() > normal, "presenter mode raises Streamlit's text"
    page.goto(page.url)  # the link opens presenting
    wait_for_app(page)
    assert root_px() > normal and page.locator('[data-testid="stSidebar"] input[type="checkbox"]:checked').count()
