"""Widgets whose default is derived from something else on the page (a preset's context length, the models to
compare with it).

Streamlit keeps a keyed widget's value when its ``value=`` argument changes, so after switching from GPT-2 to
LLaMA-7B the sequence length stayed at GPT-2's 1024. ``follow_default`` forgets the student's value whenever the
derived default changes, and keeps it otherwise.
"""
from __future__ import annotations

from collections.abc import Hashable

import streamlit as st


def follow_default(key: str, default: Hashable) -> None:
    """Call just before drawing the widget ``key`` with ``default``: a new default resets the widget to it."""
    marker = f"_derived_default_{key}"
    if marker in st.session_state and st.session_state[marker] != default:
        st.session_state.pop(key, None)
    st.session_state[marker] = default
