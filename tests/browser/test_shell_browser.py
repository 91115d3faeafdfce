"""The app opens in a real Chromium, shows the home page and every lab without an exception."""
import pytest

from explorer.ui.nav import available_labs

from .conftest import open_lab, wait_for_app

pytestmark = pytest.mark.browser


def test_home_page_renders(page, app_url):
    page.goto(app_url)
    wait_for_app(page)
    assert page.get_by_role("heading", name="Transformer Explorer").first.is_visible()
    assert "Computing on" in page.content()


@pytest.mark.parametrize("lab", available_labs(), ids=lambda lab: lab.path)
def test_every_lab_opens(page, app_url, lab):
    open_lab(page, app_url, lab.path.removeprefix("pages/").removesuffix(".py"))
    assert page.locator("h1").first.inner_text().strip()
