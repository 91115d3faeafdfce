"""The real models, loaded once per server process and shared by every session.

A loaded model is read-only: pages pass it on (as ``_pm`` to cached functions, so it is not hashed) and keep their
own results in their own variables or in ``st.cache_data``; nothing is ever written onto it. Its tokenizer sits
behind a lock (explorer.models.tokenizer.SafeTokenizer) because many sessions tokenize at once.
"""
from __future__ import annotations

import streamlit as st

from ..models.pretrained import MODEL_NAMES, MODEL_TITLES, PretrainedModel, load_model

SHORT_NAMES = {"minilm-l6": "MiniLM-L6 (BERT encoder)", "smollm2-135m": "SmolLM2-135M (LLaMA decoder)"}


@st.cache_resource(max_entries=len(MODEL_NAMES), show_spinner=False)
def shared_model(name: str) -> PretrainedModel:
    """The shared model ``name`` (one of explorer.models.pretrained.MODEL_NAMES), without any UI: for cached functions."""
    return load_model(name)


def get_model(name: str) -> PretrainedModel:
    """The shared model ``name``, loaded on first use behind a spinner."""
    with st.spinner(f"Loading {MODEL_TITLES.get(name, name)} (only the first visitor waits)…"):
        return shared_model(name)


def model_picker(key: str, default: str = "smollm2-135m", names: tuple[str, ...] = MODEL_NAMES) -> str:
    """A horizontal radio to choose one of the real models; returns its name."""
    return st.radio("Model", names, index=names.index(default), key=key, horizontal=True,
                    format_func=SHORT_NAMES.get)
