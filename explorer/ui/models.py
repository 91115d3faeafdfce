"""The real models, loaded once per server process and shared by every session.

A loaded model is read-only: pages pass it on (as ``_pm`` to cached functions, so it is not hashed) and keep their
own results in their own variables or in ``st.cache_data``; nothing is ever written onto it. Its tokenizer sits
behind a lock (explorer.models.tokenizer.SafeTokenizer) because many sessions tokenize at once.
"""
from __future__ import annotations

import streamlit as st

from ..models.pretrained import MODEL_NAMES, PretrainedModel, load_model
from .i18n import tr


@st.cache_resource(max_entries=len(MODEL_NAMES), show_spinner=False)
def shared_model(name: str) -> PretrainedModel:
    """The shared model ``name`` (one of explorer.models.pretrained.MODEL_NAMES), without any UI: for cached functions."""
    return load_model(name)


def get_model(name: str) -> PretrainedModel:
    """The shared model ``name``, loaded on first use behind a spinner."""
    with st.spinner(tr("internals.models.loading", model=tr(f"internals.models.short.{name}"))):
        return shared_model(name)


def model_picker(key: str, names: tuple[str, ...] = MODEL_NAMES) -> str:
    """A drop-down to choose one of the real models (its value in the session state under ``key``, as a lab's
    explorer.ui.url_state.LabView puts it there); returns its name. One line high: the lab's first chart must stay
    on the first screen."""
    return st.selectbox(tr("internals.models.label"), names, key=key,
                        format_func=lambda n: tr(f"internals.models.short.{n}") if n in MODEL_NAMES
                        else tr("training.mine.model_label"))  # a session's trained model (explorer.ui.training)
