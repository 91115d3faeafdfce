"""The inference lab's page: one tab at a time, chosen by a click or by ``?tab=`` in a link, only the chosen tab's
module imported and drawn, a bad tab named and replaced by the first, and the page in 中文.

The tabs themselves are tested in their own files; here each tab is a stand-in module (its own LabView with one
control) so the page's dispatch is tested whatever state the real tabs are in."""
import sys
import types

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import explorer.ui.inference as page_ui
from explorer.i18n import t
from explorer.labs.inference import TABS, InferenceSettings, model_facts, run
from explorer.ui.url_state import Control, LabView, show_problems, whole
from tests.conftest import ROOT

KEY = page_ui.VIEW.key("tab")
RENDERED = []  # the tabs whose render() ran, in order, across one test


def _stand_in(tab: str) -> types.ModuleType:
    module = types.ModuleType(f"tests.stand_in_inference_{tab}")
    view = LabView(f"inference_{tab}", [Control(f"{tab}_n", 1, whole(1, 9))])

    def render() -> None:
        RENDERED.append(tab)
        show_problems(view.open())
        st.slider(f"{tab}_n", 1, 9, key=view.key(f"{tab}_n"))
        view.publish()
        st.caption(f"stand-in {tab}")

    module.VIEW, module.render = view, render
    return module


@pytest.fixture
def stand_ins(monkeypatch):
    """Every tab served by a stand-in module."""
    RENDERED.clear()
    for tab in TABS:
        module = _stand_in(tab)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(page_ui.TAB_RENDERERS, tab, module.__name__)
    return RENDERED


def _page(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "labs/inference.py"), default_timeout=60)
    at.query_params.update(query)
    return at.run()


def _through_router(**query) -> AppTest:
    """The app as a link opens it: app.py (language switch and all), then the lab."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update(query)
    at.run()
    return at.switch_page("labs/inference.py").run()


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def _captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def test_the_first_tab_opens_alone_and_the_address_stays_empty(stand_ins):
    at = _ok(_page())
    assert at.title[0].value == t("en", "inference.title")
    assert at.segmented_control(key=KEY).value == TABS[0]
    assert stand_ins == [TABS[0]], "only the open tab runs"
    assert f"stand-in {TABS[0]}" in _captions(at)
    assert dict(at.query_params) == {}
    assert str(model_facts().text) in _captions(at)


def test_a_click_switches_the_tab_and_writes_both_views_into_the_address(stand_ins):
    at = _ok(_page())
    at.segmented_control(key=KEY).set_value("batching").run()
    _ok(at)
    assert stand_ins[-1] == "batching" and "quant" not in stand_ins[1:]
    at.slider(key="inference_batching.batching_n").set_value(4).run()
    assert dict(at.query_params) == {"tab": "batching", "batching_n": "4"}
    at.segmented_control(key=KEY).set_value(TABS[0]).run()
    assert stand_ins[-1] == TABS[0]
    assert dict(at.query_params) == {}, "the first tab is the default, and batching's setting left with its tab"
    at.segmented_control(key=KEY).set_value("batching").run()
    assert at.slider(key="inference_batching.batching_n").value == 4, "back on a tab: its last view"
    assert dict(at.query_params) == {"tab": "batching", "batching_n": "4"}


def test_a_link_opens_its_tab_with_the_tab_s_own_settings(stand_ins):
    at = _ok(_page(tab="kvcache", kvcache_n="3"))
    assert at.segmented_control(key=KEY).value == "kvcache"
    assert at.slider(key="inference_kvcache.kvcache_n").value == 3
    assert stand_ins == ["kvcache"]
    assert not at.warning
    assert dict(at.query_params) == {"tab": "kvcache", "kvcache_n": "3"}


def test_a_second_link_opens_another_tab(stand_ins):
    at = _ok(_page(tab="speculative"))
    assert at.segmented_control(key=KEY).value == "speculative" and stand_ins == ["speculative"]


def test_a_bad_tab_in_a_link_is_named_and_the_first_tab_shown(stand_ins):
    at = _ok(_page(tab="nonsense"))
    warnings = " ".join(str(w.value) for w in at.warning)
    assert "nonsense" in warnings and "tab" in warnings
    assert at.segmented_control(key=KEY).value == TABS[0] and stand_ins == [TABS[0]]


def test_the_page_in_chinese(stand_ins):
    at = _ok(_through_router(lang="zh", tab="kvcache"))
    assert at.title[0].value == t("zh", "inference.title")
    assert at.segmented_control(key=KEY).options == [t("zh", f"inference.tab.{tab}") for tab in TABS]
    assert model_facts().text.say("zh") in _captions(at)
    assert at.query_params["lang"] == "zh" and at.query_params["tab"] == "kvcache"
    at = _ok(_through_router(lang="zh", tab="bad"))
    said = t("zh", "url.bad_value", name="tab", value="bad", default=TABS[0])
    assert any(said == str(w.value).replace("\\", "") for w in at.warning)  # markdown-escaped on the page


def test_settings_check_the_tab_and_run_falls_back_to_the_first():
    InferenceSettings("kvcache").validate()
    with pytest.raises(ValueError):
        InferenceSettings("nope").validate()
    shown = run(InferenceSettings("nope"))
    assert shown.settings == InferenceSettings() and shown.error and "nope" in shown.error
    facts = shown.result
    assert facts.file.endswith(".gguf") and facts.embedding.bits > max(m.bits for m in facts.matrices)
    assert {m.name for m in facts.matrices} == {"Q4_1"}
