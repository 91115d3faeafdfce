"""Widgets and helpers shared by every page."""
from __future__ import annotations

import functools

import streamlit as st

from ..device import default_device, device_label
from ..i18n import sentence_of
from ..safe_text import escape_markdown
from ..viz.export import figure_csv
from ..viz.projector import for_projector
from .i18n import say, tr

PRESENT_KEY = "app.present"  # the presenter switch's widget key (explorer.ui.shell)


def presenting() -> bool:
    """Presenter mode: projector-sized chart text, intros folded away, charts as wide as the screen."""
    return bool(st.session_state.get(PRESENT_KEY, False))


def page_header(title: str, intro: str, course_section: str | None = None) -> None:
    """Title, a short explanation, and which part of the course notes the page makes interactive. The
    explanation folds into an expander when presenting, so the first chart is on the first screen."""
    st.title(title)
    if presenting():
        with st.expander(tr("common.about_this_lab")):
            st.markdown(intro)
    else:
        st.markdown(intro)
    if course_section:
        st.caption(tr("common.course_notes", section=course_section))


def chart(fig, key: str, **kwargs):
    """A plotly figure at full width (projector-sized text when presenting), without the plotly logo; its camera
    button saves a PNG in the browser (offline) and a button below saves its numbers as CSV. Extra arguments
    (on_select, ...) go to Streamlit."""
    if presenting():
        fig = for_projector(fig)
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": key, "scale": 2}}
    shown = st.plotly_chart(fig, width="stretch", key=key, config=config, **kwargs)
    # The CSV is made when the button is pressed (a callable): a page of 13 heatmaps redraws on every slider step,
    # and tabulating every cell of every chart each time would cost the wait a student feels.
    st.download_button(tr("common.download_csv"), functools.partial(figure_csv, fig), file_name=f"{key}.csv",
                       mime="text/csv", key=f"{key}.csv", icon=":material/download:", on_click="ignore",
                       type="tertiary")
    return shown


def show_device() -> None:
    st.caption(tr("common.computing_on", device=device_label(default_device())))


def report_invalid(err: Exception | str) -> None:
    """A ValueError from the library (or a lab outcome's error), as a sentence for the student rather than a
    traceback, in the student's language; escaped, because library sentences quote what the student typed."""
    st.error(escape_markdown(str(say(sentence_of(err) if isinstance(err, BaseException) else err))))


def report_warning(text) -> None:
    """A sentence about what is shown instead of what was asked, in the student's language; escaped, because it
    quotes what the student typed or a link carried."""
    st.warning(escape_markdown(str(say(text))))


def show_outcome(outcome) -> None:
    """A lab outcome's sentence for the student and, when something else is shown instead, what (both escaped:
    they quote what the student typed)."""
    if outcome.error:
        report_invalid(outcome.error)
    if outcome.fallback:
        report_warning(outcome.fallback)
