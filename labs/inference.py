"""Inference lab: quantization, the KV cache and paging, batching, speculative decoding and perplexity, measured on
the SmolLM2 the app serves. One tab at a time: only the open tab's code runs."""
import streamlit as st

from explorer.ui.common import page_header, show_outcome
from explorer.ui.i18n import say, tr
from explorer.ui.inference import LAB, VIEW, outcome
from explorer.ui.url_state import show_problems

page_header(tr("inference.title"), tr("inference.intro"), tr("inference.course_section"))
show_problems(VIEW.open())
shown = outcome(LAB.choose())
show_outcome(shown)
LAB.show(shown.settings.tab)

if shown.result is not None:
    st.divider()
    st.caption(say(shown.result.text))
