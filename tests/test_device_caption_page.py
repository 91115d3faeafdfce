"""The router's sidebar says where the labs compute; no page repeats it (Home and Internals used to, twice on
screen)."""
import pytest
from streamlit.testing.v1 import AppTest

from explorer.ui.nav import LABS
from tests.conftest import ROOT

PAGES = ["labs/home.py"] + [lab.path for lab in LABS]


def _device_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Computing on")]


@pytest.mark.parametrize("path", PAGES)
def test_the_device_is_named_once_per_screen(path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    if path != "labs/home.py":
        at.switch_page(path).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(_device_captions(at)) == 1, _device_captions(at)
    assert len([c for c in at.sidebar.caption if c.value.startswith("Computing on")]) == 1
