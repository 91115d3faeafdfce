"""Every page runs to the end without an exception, reached through the router as a student reaches it, in English
and in Chinese with presenter mode on."""
import re

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.ui.nav import LABS
from tests.conftest import ROOT

PAGES = [lab.path for lab in LABS]
CJK = re.compile(r"[\u4e00-\u9fff]")


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


def test_home_in_chinese_names_every_lab_in_chinese():
    at = _router()
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == t("zh", "home.title")
    links = [link.label for link in at.get("page_link")]
    assert links == [lab.text("zh", "title") for lab in LABS]


@pytest.mark.parametrize("path", PAGES)
def test_page_runs_in_chinese_when_presenting(path):
    """A classroom's view: Chinese, presenter mode (projector-sized figures, intro folded)."""
    at = _router()
    at.query_params.update(lang="zh", present="1")
    at.run()
    at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.toggle(key="app.present").value is True
    assert CJK.search(at.title[0].value), f"the title is not in Chinese: {at.title[0].value!r}"
