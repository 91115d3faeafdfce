"""Widgets and helpers shared by every page."""
from __future__ import annotations

import streamlit as st

from ..device import default_device, device_label
from ..safe_text import escape_markdown


def page_header(title: str, intro: str, course_section: str | None = None) -> None:
    """Title, a short explanation, and which part of the course notes the page makes interactive."""
    st.title(title)
    st.markdown(intro)
    if course_section:
        st.caption(f"Course notes: {course_section}")


def chart(fig, key: str, **kwargs):
    """A plotly figure at full width without the plotly logo; extra arguments (on_select, ...) go to Streamlit."""
    return st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False}, **kwargs)


def show_device() -> None:
    st.caption(f"Computing on **{device_label(default_device())}**")


def report_invalid(err: Exception | str) -> None:
    """A ValueError from the library (or a lab outcome's error), as a sentence for the student rather than a
    traceback; escaped, because library sentences quote what the student typed."""
    st.error(escape_markdown(str(err)))


def show_outcome(outcome) -> None:
    """A lab outcome's sentence for the student and, when something else is shown instead, what (both escaped:
    they quote what the student typed)."""
    if outcome.error:
        report_invalid(outcome.error)
    if outcome.fallback:
        st.warning(escape_markdown(outcome.fallback))
