"""Widgets and helpers shared by every page."""
from __future__ import annotations

import os

import streamlit as st
import torch

from ..device import default_device, device_label

# A classroom server runs many sessions at once. With several OpenMP threads per op, a tiny op then waits for a
# descheduled thread: softmax of an 8x6x6 tensor took 12 ms with 2 threads on a busy 2-core machine and 7 us with
# 1. The labs' tensors are small, so one thread per computation is faster for everyone. Pages import this module,
# and Streamlit runs every rerun in a new thread, which takes this setting over.
torch.set_num_threads(int(os.environ.get("EXPLORER_TORCH_THREADS", "1")))


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


def report_invalid(err: Exception) -> None:
    """A ValueError from the library, as a sentence for the student rather than a traceback."""
    st.error(str(err))
