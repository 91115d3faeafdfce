"""Widgets and helpers shared by every page."""
from __future__ import annotations

import streamlit as st

from ..device import default_device, device_label


def page_header(title: str, intro: str, course_section: str | None = None) -> None:
    """Title, a short explanation, and which part of the course notes the page makes interactive."""
    st.title(title)
    st.markdown(intro)
    if course_section:
        st.caption(f"Course notes: {course_section}")


def show_device() -> None:
    st.caption(f"Computing on **{device_label(default_device())}**")


def report_invalid(err: Exception) -> None:
    """A ValueError from the library, as a sentence for the student rather than a traceback."""
    st.error(str(err))
