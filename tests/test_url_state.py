"""A link for every view (explorer.ui.url_state), on a small page with the shape every lab has: a link seeds the
widgets, a bad value is named and replaced by the default, a moved widget writes the address (a default leaves
it), reset, a control whose choices depend on another kept valid, and the lab's view kept across pages."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.i18n import t
from tests.conftest import ROOT, shown_text

# The page of a lab in miniature: n_kv_head's choices are the divisors of n_head, as in the attention lab.
PAGE = """
import streamlit as st
from explorer.ui.url_state import Control, LabView, flag, link_and_reset, one_of, show_flag, show_problems, whole

VIEW = LabView("demo", [Control("n_head", 4, whole(1, 16)), Control("n_kv_head", 4, whole(1, 16)),
                        Control("mask", "causal", one_of(["causal", "none", "sliding_window"])),
                        Control("rope", False, flag, show_flag)])
show_problems(VIEW.open())
n_head = st.slider("heads", 1, 16, key=VIEW.key("n_head"))
divisors = [d for d in range(1, n_head + 1) if n_head % d == 0]
VIEW.keep_valid("n_kv_head", lambda v: v in divisors, divisors[-1])
st.selectbox("kv heads", divisors, key=VIEW.key("n_kv_head"))
st.selectbox("mask", ["causal", "none", "sliding_window"], key=VIEW.key("mask"))
st.checkbox("rope", key=VIEW.key("rope"))
VIEW.publish()
with st.sidebar:
    link_and_reset(VIEW)
"""


def _page(**query) -> AppTest:
    at = AppTest.from_string(PAGE, default_timeout=30)
    at.query_params.update(query)
    return at.run()


def _view(at: AppTest) -> tuple:
    assert not at.exception, [e.value for e in at.exception]
    return (at.slider(key="demo.n_head").value, at.selectbox(key="demo.n_kv_head").value,
            at.selectbox(key="demo.mask").value, at.checkbox(key="demo.rope").value)


def test_a_link_seeds_the_widgets_and_stays_in_the_address():
    at = _page(n_head="8", n_kv_head="2", mask="sliding_window", rope="1")
    assert _view(at) == (8, 2, "sliding_window", True)
    assert not at.warning
    assert at.query_params == {"n_head": "8", "n_kv_head": "2", "mask": "sliding_window", "rope": "1"}


def test_no_link_opens_the_defaults_with_a_clean_address():
    at = _page()
    assert _view(at) == (4, 4, "causal", False)
    assert at.query_params == {}


@pytest.mark.parametrize("name, bad", [("n_head", "99"), ("n_head", "four"), ("mask", "diagonal"), ("rope", "maybe"),
                                       ("n_head", "nan")])
def test_a_bad_value_in_a_link_is_named_and_replaced_by_the_default(name, bad):
    at = _page(**{name: bad, "n_kv_head": "2"})
    view = dict(zip(("n_head", "n_kv_head", "mask", "rope"), _view(at)))
    default = {"n_head": 4, "mask": "causal", "rope": False}[name]
    assert view[name] == default and view["n_kv_head"] == 2, "the good values of the link are kept"
    warnings = [shown_text(w.value) for w in at.warning]
    assert len(warnings) == 1 and name in warnings[0] and bad in warnings[0], warnings
    assert name not in at.query_params and at.query_params["n_kv_head"] == "2"


def test_a_bad_value_is_named_in_the_students_language():
    at = AppTest.from_string("import streamlit as st\nst.session_state['app.lang'] = 'zh'\n" + PAGE,
                             default_timeout=30)
    at.query_params["n_head"] = "99"
    at.run()
    assert shown_text(at.warning[0].value).startswith(t("zh", "url.bad_value", name="n_head", value="99", default=4)[:6])
    assert "n_head" in shown_text(at.warning[0].value) and "默认" in shown_text(at.warning[0].value)


def test_a_moved_widget_writes_the_address_and_a_default_value_leaves_it():
    at = _page()
    at.slider(key="demo.n_head").set_value(8).run()
    assert at.query_params == {"n_head": "8"}
    at.selectbox(key="demo.mask").set_value("none").run()
    assert at.query_params == {"n_head": "8", "mask": "none"}
    at.slider(key="demo.n_head").set_value(4).run()
    assert at.query_params == {"mask": "none"}
    assert _view(at) == (4, 4, "none", False)


def test_a_moved_widget_wins_over_the_link_it_was_opened_with():
    at = _page(n_head="8", mask="none")
    at.selectbox(key="demo.mask").set_value("sliding_window").run()
    assert _view(at)[0] == 8 and _view(at)[2] == "sliding_window"
    assert at.query_params == {"n_head": "8", "mask": "sliding_window"}


def test_a_link_opened_again_in_the_same_session_wins_over_the_widgets():
    """Back/Forward or an edited address: an address this session did not write."""
    at = _page()
    at.slider(key="demo.n_head").set_value(8).run()
    at.query_params.clear()
    at.query_params.update(n_head="2", mask="none")
    at.run()
    assert _view(at) == (2, 2, "none", False)


def test_reset_returns_to_the_defaults_and_clears_the_address():
    at = _page(n_head="8", n_kv_head="2", mask="none", rope="on")
    at.button(key="demo._reset").click().run()
    assert _view(at) == (4, 4, "causal", False)
    assert at.query_params == {}
    at.slider(key="demo.n_head").set_value(6).run()  # and the lab goes on from there
    assert at.query_params == {"n_head": "6", "n_kv_head": "6"}


def test_a_dependent_control_is_kept_valid_when_its_choices_change():
    at = _page(n_head="8", n_kv_head="8")
    at.slider(key="demo.n_head").set_value(6).run()  # 8 is no divisor of 6
    assert _view(at)[:2] == (6, 6)
    assert at.query_params == {"n_head": "6", "n_kv_head": "6"}
    at.selectbox(key="demo.n_kv_head").set_value(3).run()
    assert _view(at)[:2] == (6, 3)


def test_an_impossible_pair_in_a_link_is_named():
    at = _page(n_head="6", n_kv_head="4")
    assert _view(at)[:2] == (6, 6)
    warnings = [shown_text(w.value) for w in at.warning]
    assert len(warnings) == 1 and "n_kv_head" in warnings[0] and "4" in warnings[0], warnings
    at.slider(key="demo.n_head").set_value(8).run()
    assert not at.warning, "the warning is about the link, not every later run"


def test_the_copy_link_box_holds_the_view():
    at = _page(n_head="8", mask="none")
    link = at.sidebar.code[0].value
    assert link.endswith("?n_head=8&mask=none") or link.endswith("?mask=none&n_head=8"), link


# ---- the view kept across pages (a real router: the menu clears the address, as Streamlit's does) ----------------
_ROUTER = """
import streamlit as st
from explorer.ui.shell import app_controls
from explorer.ui.url_state import write_address
app_controls()
try:
    st.navigation([st.Page("{home}", default=True), st.Page("{lab}", url_path="demo")]).run()
finally:
    write_address()
"""


@pytest.fixture
def router(tmp_path: Path) -> AppTest:
    (tmp_path / "home.py").write_text("import streamlit as st\nst.title('home')\n")
    (tmp_path / "demo.py").write_text(PAGE)
    app = tmp_path / "app.py"
    app.write_text(_ROUTER.format(home="home.py", lab="demo.py"))
    at = AppTest.from_file(str(app), default_timeout=30)
    return at.run()


def _through_menu(at: AppTest, page: str) -> AppTest:
    at.query_params.clear()  # Streamlit's menu opens a page without the address of the page before
    return at.switch_page(page).run()


def test_coming_back_through_the_menu_shows_the_labs_last_view(router):
    at = _through_menu(router, "demo.py")
    at.slider(key="demo.n_head").set_value(8).run()
    at.selectbox(key="demo.mask").set_value("none").run()
    _through_menu(at, "home.py")
    assert at.title[0].value == "home"
    _through_menu(at, "demo.py")
    assert _view(at) == (8, 4, "none", False)
    assert {k: v for k, v in at.query_params.items() if k != "lang"} == {"n_head": "8", "mask": "none"}


def test_the_language_is_kept_across_pages_and_in_every_address(router):
    at = router
    assert at.query_params["lang"] == "en", "the browser's language (none in AppTest: English) is written"
    at.sidebar.radio(key="app.lang").set_value("zh").run()
    assert at.query_params["lang"] == "zh"
    _through_menu(at, "demo.py")
    assert at.sidebar.radio(key="app.lang").value == "zh" and at.query_params["lang"] == "zh"
    assert at.sidebar.button(key="demo._reset").label == t("zh", "common.reset_lab")


def test_a_link_names_the_language_and_presenter_mode():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(lang="zh", present="1")
    at.run()
    assert not at.exception
    assert at.sidebar.radio(key="app.lang").value == "zh" and at.sidebar.toggle(key="app.present").value is True
    assert at.title[0].value == t("zh", "home.title")
    assert at.query_params == {"lang": "zh", "present": "1"}
    at.sidebar.toggle(key="app.present").set_value(False).run()
    assert at.query_params == {"lang": "zh"}


def test_a_bad_language_in_a_link_is_named_and_the_browsers_is_used():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["lang"] = "fr"
    at.run()
    assert at.sidebar.radio(key="app.lang").value == "en"
    assert any("lang" in shown_text(w.value) and "fr" in shown_text(w.value) for w in at.warning), [shown_text(w.value) for w in at.warning]
    assert at.query_params["lang"] == "en"


def test_a_float_is_written_as_the_student_reads_it():
    at = AppTest.from_string("""
import streamlit as st
from explorer.ui.url_state import Control, LabView, number
VIEW = LabView("demo", [Control("temperature", 0.7, number(0.0, 2.0))])
VIEW.open()
st.slider("temperature", 0.0, 2.0, step=0.1, key=VIEW.key("temperature"))
VIEW.publish()
""", default_timeout=30).run()
    at.slider(key="demo.temperature").set_value(0.1 + 0.2).run()
    assert at.query_params == {"temperature": "0.3"}
    at.slider(key="demo.temperature").set_value(0.1 * 7).run()  # 0.7000000000000001: the default
    assert at.query_params == {}


def test_switching_the_language_keeps_the_view():
    """Every label changes with the language; the values (and the address) must not."""
    at = AppTest.from_string("""
import streamlit as st
from explorer.ui.shell import app_controls
from explorer.ui.i18n import tr
from explorer.ui.url_state import Control, LabView, one_of, whole
app_controls()
VIEW = LabView("demo", [Control("n_head", 4, whole(1, 16)), Control("mask", "causal", one_of(["causal", "none"]))])
VIEW.open()
st.slider(tr("common.language") + " n_head", 1, 16, key=VIEW.key("n_head"))
st.selectbox(tr("common.present"), ["causal", "none"], key=VIEW.key("mask"),
             format_func=lambda v: tr("common.present") + v)
VIEW.publish()
""", default_timeout=30).run()
    at.slider(key="demo.n_head").set_value(8).run()
    at.selectbox(key="demo.mask").set_value("none").run()
    at.sidebar.radio(key="app.lang").set_value("zh").run()
    assert not at.exception
    assert at.slider(key="demo.n_head").value == 8 and at.selectbox(key="demo.mask").value == "none"
    assert at.slider(key="demo.n_head").label.startswith(t("zh", "common.language"))
    assert at.query_params == {"lang": "zh", "n_head": "8", "mask": "none"}


def test_the_app_keeps_a_labs_view_across_labs():
    """The same on app.py and a real lab: the attention lab's heads survive a visit to another lab."""
    from explorer.ui.attention import VIEW
    from explorer.ui.nav import LABS

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    lab = next(lab for lab in LABS if lab.url_path == "attention")
    _through_menu(at, lab.path)
    heads = VIEW.controls["n_head"].default * 2
    at.slider(key=VIEW.key("n_head")).set_value(heads).run()
    assert at.query_params["n_head"] == str(heads)
    _through_menu(at, "labs/home.py")
    assert "n_head" not in at.query_params
    _through_menu(at, lab.path)
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key=VIEW.key("n_head")).value == heads and at.query_params["n_head"] == str(heads)


def test_a_rerun_carrying_the_address_before_the_last_change_keeps_the_students_controls():
    # Quick key presses: the browser sends the next rerun before the last run's new address reached it, so the
    # run sees an older address; the control just moved must not be undone by it (nor the one moved before).
    at = _page(n_head="2")
    at.slider(key="demo.n_head").set_value(8).run()
    assert at.query_params["n_head"] == "8"
    at.query_params["n_head"] = "2"  # the address as it was before that change
    at.selectbox(key="demo.mask").set_value("none").run()
    assert _view(at)[0] == 8 and _view(at)[2] == "none"
    assert at.query_params["n_head"] == "8" and at.query_params["mask"] == "none"


def test_back_to_an_earlier_address_of_the_same_lab_shows_that_view():
    # Back or Forward: an address this session did not just write, and no control moved: the address wins.
    at = _page()
    at.slider(key="demo.n_head").set_value(8).run()
    at.selectbox(key="demo.mask").set_value("none").run()
    at.query_params.clear()
    at.query_params["n_head"] = "8"  # the entry before the mask was changed
    at.run()
    assert _view(at)[:3] == (8, 4, "causal")


def test_a_links_value_is_quoted_as_text_not_drawn_as_markdown():
    # Anyone can write a link: an image or a tag in a value must reach the student as the characters it is.
    payload = "![x](http://127.0.0.1:9/x.png)<img src=y>"
    at = _page(n_head=payload)
    assert _view(at)[0] == 4
    shown = at.warning[0].value
    assert "![x](" not in shown and "\\!\\[x\\]" in shown  # Markdown's image syntax, escaped
    assert "\\<img" in shown and shown_text(shown).count(payload) == 1  # the tag too; the student reads it all
