"""The session's language for the pages: ``tr(key, ...)`` for a catalog text, ``say(text)`` for a library sentence
(a Msg) or anything else. The language lives in this session's state (the sidebar switch, ``?lang=``), never in
the process: forty sessions share one server, each in its own language."""
from __future__ import annotations

from typing import Any

import streamlit as st

from ..i18n import lang_from_locale, render, t

LANG_KEY = "app.lang"  # the sidebar switch's widget key (explorer.ui.shell)


def lang() -> str:
    """This session's language: the switch, else the browser's language (navigator.language), else English."""
    chosen = st.session_state.get(LANG_KEY)
    return chosen if chosen else lang_from_locale(st.context.locale)


def tr(key: str, /, **params: Any) -> str:
    return t(lang(), key, **params)


def say(text: Any) -> Any:
    return render(text, lang())
