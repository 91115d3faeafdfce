"""Streamlit glue of the attention lab: the sidebar that builds its settings, and the caches of what it computes."""
from __future__ import annotations

import dataclasses

import streamlit as st

from ..config import attention_kind, kv_head_choices
from ..labs.attention import (
    D_MODEL_MAX, MASK_CHOICES, MASK_LABELS, N_HEAD_MAX, PAD_MAX, SEED_MAX, AttentionLabResult, AttentionSettings,
    ParamRow, SqrtDkStudy, attention_params, run, sqrt_dk_study,
)
from ..labs.outcome import Outcome
from ..models.toy_tokens import MAX_LAB_TOKENS, Tokens


def sidebar_settings() -> AttentionSettings:
    """The layer's controls in the sidebar; what the student asked for, checked later by ``run``."""
    with st.sidebar:
        st.subheader("Attention layer")
        d_model = st.number_input("d_model (width of each token vector)", 1, D_MODEL_MAX, 64, step=8, key="d_model")
        n_head = st.slider("n_head (number of heads)", 1, N_HEAD_MAX, 4, key="n_head")
        n_kv_head = st.selectbox(
            "n_kv_head (key/value heads)", kv_head_choices(n_head), key=f"n_kv_head_{n_head}",
            format_func=lambda n: f"{n} · {attention_kind(n_head, n)}",
            help="n_kv_head = n_head is multi-head attention (MHA); fewer key/value heads shared by groups of query "
                 "heads is grouped-query attention (GQA); a single one is multi-query attention (MQA).",
        )
        mask = st.selectbox("Mask", MASK_CHOICES, index=1, format_func=MASK_LABELS.get, key="mask")
        pad_len, window, prefix_len = 2, 3, 2
        if mask == "padding":
            pad_len = st.slider("Padding tokens appended", 1, PAD_MAX // 2, 2, key="pad_len")
        elif mask == "sliding_window":
            window = st.slider("Window width w", 1, MAX_LAB_TOKENS, 3, key="window")
        elif mask == "prefix":
            prefix_len = st.slider("Prefix length p", 0, MAX_LAB_TOKENS, 2, key="prefix_len")
        scale = st.toggle("Divide by √d_k", True, key="scale")
        seed = st.number_input("Random seed (weights and embeddings)", 0, SEED_MAX, 0, key="seed")
    return AttentionSettings(d_model=int(d_model), n_head=n_head, n_kv_head=n_kv_head, mask=mask, pad_len=pad_len,
                             window=window, prefix_len=prefix_len, scale=scale, seed=int(seed))


# One result is 0.05 MB (the defaults) to 1.7 MB (32 tokens, d_model 512, 16 heads) pickled. The byte limit is the
# bound (issue 17: unique sentences grew the server); 32 MB still holds 128 results of a class at the defaults.
@st.cache_data(max_entries=128, max_size="32MB", ttl=3600, show_spinner=False)
def outcome(tokens: Tokens, settings: AttentionSettings) -> Outcome[AttentionSettings, AttentionLabResult]:
    return run(tokens, settings)


@st.cache_data(max_entries=64, show_spinner=False)
def study(tokens: Tokens, settings: AttentionSettings) -> SqrtDkStudy:
    # n_head and scaling do not enter the study: normalise them so those sliders reuse the cached result
    return sqrt_dk_study(tokens, dataclasses.replace(settings, n_head=1, n_kv_head=None, scale=True))


@st.cache_data(max_entries=64, show_spinner=False)
def params(d_model: int, n_head: int, n_kv_head: int) -> list[ParamRow]:
    return attention_params(d_model, n_head, n_kv_head)
