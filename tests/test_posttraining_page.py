"""The post-training lab's page: one tab open at a time, chosen by a click or by a link (``?tab=lora``), a bad
``?tab=`` named and replaced by the first tab, the page in 中文, and a tab's controls leaving the address when
another tab opens, also when two tabs share a setting's name."""
import sys
import types

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from explorer.labs.posttraining import TABS, PosttrainingSettings, run
from explorer.ui import posttraining as page_glue
from tests.conftest import ROOT


def _page(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "labs/posttraining.py"), default_timeout=180)
    at.query_params.update(query)
    return at.run()


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chooser(at: AppTest):
    return at.segmented_control(key="posttraining.tab")


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


FAKE_TAB = '''
import streamlit as st
from explorer.ui.url_state import Control, LabView, show_problems, whole
VIEW = LabView("{lab}", [Control("{name}", 1, whole(1, 9))])
def render():
    show_problems(VIEW.open())
    st.slider("n", 1, 9, key=VIEW.key("{name}"))
    VIEW.publish()
'''


def _fake(monkeypatch, names: dict[str, str]) -> None:
    for tab, name in names.items():
        module = types.ModuleType(f"tests_fake_posttraining_{tab}")
        exec(FAKE_TAB.format(lab=f"fake_{tab}", name=name), module.__dict__)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(page_glue.TAB_RENDERERS, tab, module.__name__)


@pytest.fixture
def fake_tabs(monkeypatch):
    """Two tabs with one control each, standing in for the real ones: the page's own behaviour (dispatch, the
    address) is tested apart from what the tabs compute."""
    _fake(monkeypatch, {"losses": "fake_beta", "grpo": "fake_group"})


def test_two_tabs_sharing_a_setting_s_name_each_keep_their_own(monkeypatch):
    """The SFT and LoRA tabs both have ``steps``: a click to the other tab must not hand it this tab's value."""
    _fake(monkeypatch, {"losses": "steps", "grpo": "steps"})
    at = _ok(_page(tab="grpo", steps="4"))
    assert at.slider(key="fake_grpo.steps").value == 4
    _chooser(at).set_value("losses").run()
    assert _ok(at).slider(key="fake_losses.steps").value == 1, "the other tab's value stayed with its tab"
    assert dict(at.query_params) == {"tab": "losses"}
    at.slider(key="fake_losses.steps").set_value(7).run()
    assert dict(at.query_params) == {"tab": "losses", "steps": "7"}
    _chooser(at).set_value("grpo").run()
    assert _ok(at).slider(key="fake_grpo.steps").value == 4
    assert dict(at.query_params) == {"tab": "grpo", "steps": "4"}


def test_settings_check_the_tab_and_an_unknown_one_opens_the_first():
    assert run(PosttrainingSettings("lora")).ok and run(PosttrainingSettings("lora")).result.step == 2
    shown = run(PosttrainingSettings("rlhf"))
    assert shown.error and shown.result.tab == TABS[0] and "rlhf" in shown.error and "tab = sft" in shown.fallback


def test_a_tab_link_opens_that_tab_and_stays_in_the_address(fake_tabs):
    at = _ok(_page(tab="grpo", fake_group="4"))
    assert _chooser(at).value == "grpo"
    assert at.slider(key="fake_grpo.fake_group").value == 4
    assert dict(at.query_params) == {"tab": "grpo", "fake_group": "4"}
    assert t("en", "posttraining.summary.grpo") in _captions(at)
    assert not at.warning


def test_a_click_on_a_tab_opens_it_and_the_other_tabs_controls_leave_the_address(fake_tabs):
    at = _ok(_page(tab="grpo", fake_group="4"))
    _chooser(at).set_value("losses").run()
    _ok(at)
    assert at.slider(key="fake_losses.fake_beta").value == 1
    assert not [s for s in at.slider if s.key == "fake_grpo.fake_group"], "only the open tab's code runs"
    assert dict(at.query_params) == {"tab": "losses"}
    at.slider(key="fake_losses.fake_beta").set_value(7).run()
    assert dict(at.query_params) == {"tab": "losses", "fake_beta": "7"}
    _chooser(at).set_value("grpo").run()  # back: the tab's last view in this session, not its default
    assert at.slider(key="fake_grpo.fake_group").value == 4
    assert dict(at.query_params) == {"tab": "grpo", "fake_group": "4"}


def test_a_bad_tab_in_a_link_is_named_and_the_first_tab_opens(fake_tabs):
    at = _ok(_page(tab="rlhf"))
    assert any("rlhf" in str(w.value) for w in at.warning)
    assert _chooser(at).value == TABS[0]
    assert "tab" not in at.query_params


def test_the_page_in_chinese(fake_tabs):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params.update(lang="zh", tab="losses")
    at.run()
    at = _ok(at.switch_page("labs/posttraining.py").run())
    assert at.title[0].value == t("zh", "posttraining.title")
    assert _chooser(at).options == [t("zh", f"posttraining.tab.{tab}") for tab in TABS]
    assert t("zh", "posttraining.summary.losses") in _captions(at)
