"""The classroom server may have no internet: nothing the app serves may make the browser ask another host.

One browser session opens Home and every lab; every request it makes (pages, scripts, fonts, the favicon, images,
websockets) is recorded, and any host other than the server's own fails the test.
"""
from urllib.parse import urlparse

import pytest

from explorer.ui.nav import LABS

from .conftest import open_lab, wait_for_app

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _outside(urls) -> list[str]:
    # data: and blob: URLs never leave the browser; every other scheme names a host.
    return sorted({u for u in urls if urlparse(u).scheme not in ("data", "blob", "about")
                   and urlparse(u).hostname not in LOCAL_HOSTS})


def test_a_session_through_every_lab_requests_nothing_outside_the_server(browser, app_url):
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    page = context.new_page()
    page.on("websocket", lambda ws: requested.append(ws.url))
    try:
        page.goto(app_url)
        wait_for_app(page)
        # The favicon arrives with the page config, after the first script run: let it be requested.
        page.wait_for_load_state("networkidle")
        labs = LABS
        assert labs, "no lab is installed"
        for lab in labs:
            open_lab(page, app_url, lab.url_path)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(500)
    finally:
        context.close()
    assert any(urlparse(u).hostname in LOCAL_HOSTS for u in requested), "the session requested nothing at all"
    assert not _outside(requested), f"requests outside the server: {_outside(requested)}"
