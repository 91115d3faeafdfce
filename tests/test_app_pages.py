"""Every page runs to the end without an exception, reached through the router as a student reaches it."""
import pytest
from streamlit.testing.v1 import AppTest

from explorer.ui.nav import LABS
from tests.conftest import ROOT

PAGES = [lab.path for lab in LABS]


def _router() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)


def test_home_lists_every_lab():
    at = _router().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Transformer Explorer"]
    assert "Computing on" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("path", PAGES)
def test_page_runs_without_exception(path):
    at = _router().run()
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title and at.title[0].value != "Transformer Explorer", "the lab has a title of its own"
