"""A lab page in AppTest as a link opens it, and what a test reads from it: one copy for every lab's tests."""
from __future__ import annotations

import json
from collections.abc import Iterable

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def ok(at: AppTest) -> AppTest:
    """The run, after checking that no exception reached the page."""
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_page(page: str, timeout: float = 120, **query) -> AppTest:
    """``page`` (e.g. labs/positional.py) run alone with ``query`` in its address."""
    at = AppTest.from_file(str(ROOT / page), default_timeout=timeout)
    at.query_params.update(query)
    return at.run()


def through_router(page: str, timeout: float = 120, **query) -> AppTest:
    """The app as a link opens it: app.py (language switch and all) with ``query``, then ``page``."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.query_params.update(query)
    at.run()
    return at.switch_page(page).run()


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]


def figure(at: AppTest, key: str) -> dict:
    """The one chart drawn with ``key``, as plotly JSON."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(found[0].proto.spec)


def texts(at: AppTest, kinds: Iterable[str]) -> list[str]:
    """The values of every element of these kinds (markdown, caption, warning ...), kind by kind."""
    return [str(e.value) for kind in kinds for e in at.get(kind)]


def captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)
