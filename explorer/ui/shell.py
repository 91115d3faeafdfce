"""What every page shares in the sidebar: the language switch and the presenter switch, both kept in the address
(``?lang=zh``, ``?present=1``) like every lab's controls."""
from __future__ import annotations

import streamlit as st

from ..i18n import LANG_NAMES, LANGS, lang_from_locale
from ..viz.projector import PROJECTOR_MIN_PX
from .common import PRESENT_KEY, presenting
from .i18n import LANG_KEY, tr
from .url_state import Control, LabView, flag, one_of, show_flag, show_problems, start_run

# lang has no fixed default: it follows the browser, and a link always names it, so it opens in its language.
APP = LabView("app", [Control("lang", None, one_of(LANGS)), Control("present", False, flag, show_flag)])
assert APP.key("lang") == LANG_KEY and APP.key("present") == PRESENT_KEY

# Streamlit's own text scales with the root font size; charts are raised separately (explorer.viz.projector).
_PRESENTER_CSS = f"""<style>
html {{ font-size: 20px; }}
[data-testid="stMainBlockContainer"] {{ max-width: 100%; padding: 1.5rem 1.5rem 4rem; }}
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li {{ font-size: 1.05rem; }}
[data-testid="stCaptionContainer"] {{ font-size: {PROJECTOR_MIN_PX}px; }}
</style>"""


def app_controls() -> None:
    """Before the page: the session's language and presenter mode, each from the address, the session or (the
    language) the browser; a bad value in the address is named and replaced by the default."""
    start_run()
    problems = APP.open()
    if st.session_state.get(LANG_KEY) is None:
        st.session_state[LANG_KEY] = lang_from_locale(st.context.locale)
    with st.sidebar:
        st.radio(tr("common.language"), LANGS, format_func=LANG_NAMES.get, key=LANG_KEY, horizontal=True)
        st.toggle(tr("common.present"), key=PRESENT_KEY, help=tr("common.present_help"))
    # lang is never at its default (None), so a link always names it and opens in its language; written with the
    # page's own view (app.py calls write_address after the page), so that a run adds one history entry
    APP.publish(write=False)
    show_problems(problems)
    if presenting():
        st.html(_PRESENTER_CSS)
