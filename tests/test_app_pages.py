"""Every page runs to the end without an exception, through the router and on its own."""
import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

from explorer.ui.nav import available_labs

PAGES = ["pages/home.py"] + [lab.path for lab in available_labs()]


def test_router_runs():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("Transformer Explorer" in t.value for t in at.title)


@pytest.mark.parametrize("path", PAGES)
def test_page_runs_without_exception(path):
    at = AppTest.from_file(str(ROOT / path), default_timeout=300).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"
