"""Streamlit glue of the attention lab: the sidebar that builds its settings, and the caches of what it computes."""
from __future__ import annotations

import dataclasses

import streamlit as st

from ..config import attention_kind, kv_head_choices
from ..labs.attention import (
    D_MODEL_MAX, MASK_CHOICES, N_HEAD_MAX, PAD_MAX, SEED_MAX, AttentionLabResult, AttentionSettings, ParamRow,
    SqrtDkStudy, attention_params, run, sqrt_dk_study,
)
from .. import priority
from ..labs.outcome import Outcome
from ..models.toy_tokens import DEFAULT_SENTENCE, MAX_LAB_TOKENS, Tokens
from ..i18n import t
from .i18n import lang, tr
from .url_state import Control, LabView, flag, one_of, show_flag, text, whole

DEFAULTS = AttentionSettings()
SENTENCE_MAX_CHARS = 400  # the sentence box's max_chars (explorer.ui.sentence)
# The n_kv_head box's value for plain MHA (the settings' None), whatever n_head is: MHA stays MHA when the heads
# slider moves, and the address leaves it out, so that ?n_head=8 means eight heads with eight key/value heads.
MHA = 0
# The step-by-step walk's steps, in order, as the address writes them (?step=scale); their names are
# attention.steps_pick.<step> in the catalog.
STEPS = ("x", "qkv", "qk", "scale", "mask", "masked", "softmax", "z", "concat", "out")

VIEW = LabView("attention", [
    Control("sentence", DEFAULT_SENTENCE, text(SENTENCE_MAX_CHARS)),
    Control("d_model", DEFAULTS.d_model, whole(1, D_MODEL_MAX)),
    Control("n_head", DEFAULTS.n_head, whole(1, N_HEAD_MAX)),
    Control("n_kv_head", MHA, whole(1, N_HEAD_MAX), lambda n: "MHA" if n == MHA else str(n)),
    Control("mask", DEFAULTS.mask, one_of(MASK_CHOICES)),
    Control("pad_len", DEFAULTS.pad_len, whole(1, PAD_MAX // 2)),
    Control("window", DEFAULTS.window, whole(1, MAX_LAB_TOKENS)),
    Control("prefix_len", DEFAULTS.prefix_len, whole(0, MAX_LAB_TOKENS)),
    Control("scale", DEFAULTS.scale, flag, show_flag),
    Control("seed", DEFAULTS.seed, whole(0, SEED_MAX)),
    Control("step", STEPS[0], one_of(STEPS)),
])


def sidebar_settings() -> AttentionSettings:
    """The layer's controls in the sidebar (their values in the view's state: the address, or the student's last
    view); what the student asked for, checked later by ``run``."""
    said = lang()  # the options' words in this run's language, also when a test formats them after the run
    with st.sidebar:
        st.subheader(tr("attention.sidebar.layer"))
        d_model = st.number_input(tr("attention.sidebar.d_model"), 1, D_MODEL_MAX, step=8, key=VIEW.key("d_model"))
        n_head = st.slider(tr("attention.sidebar.n_head"), 1, N_HEAD_MAX, key=VIEW.key("n_head"))
        choices = [MHA, *kv_head_choices(n_head)[1:]]  # n_head itself (MHA) is said as MHA
        if st.session_state.get(VIEW.key("n_kv_head")) == n_head:  # a link's n_kv_head = n_head: MHA
            st.session_state[VIEW.key("n_kv_head")] = MHA
        VIEW.keep_valid("n_kv_head", lambda n: n in choices, MHA)  # MHA when n_head no longer allows it
        n_kv_head = st.selectbox(
            tr("attention.sidebar.n_kv_head"), choices, key=VIEW.key("n_kv_head"),
            format_func=lambda n: t(said, "attention.sidebar.n_kv_head_option", n=n or n_head,
                                    kind=attention_kind(n_head, n or n_head)),
            help=tr("attention.sidebar.n_kv_head_help"),
        )
        mask = st.selectbox(tr("attention.sidebar.mask"), MASK_CHOICES, key=VIEW.key("mask"),
                            format_func=lambda m: t(said, f"attention.mask.{m}"))
        pad_len, window, prefix_len = DEFAULTS.pad_len, DEFAULTS.window, DEFAULTS.prefix_len
        if mask == "padding":
            pad_len = st.slider(tr("attention.sidebar.pad_len"), 1, PAD_MAX // 2, key=VIEW.key("pad_len"))
        elif mask == "sliding_window":
            window = st.slider(tr("attention.sidebar.window"), 1, MAX_LAB_TOKENS, key=VIEW.key("window"))
        elif mask == "prefix":
            prefix_len = st.slider(tr("attention.sidebar.prefix_len"), 0, MAX_LAB_TOKENS, key=VIEW.key("prefix_len"))
        scale = st.toggle(tr("attention.sidebar.scale"), key=VIEW.key("scale"))
        seed = st.number_input(tr("attention.sidebar.seed"), 0, SEED_MAX, key=VIEW.key("seed"))
    return AttentionSettings(d_model=int(d_model), n_head=n_head, n_kv_head=n_kv_head or None, mask=mask,
                             pad_len=pad_len, window=window, prefix_len=prefix_len, scale=scale, seed=int(seed))


# One result is 0.05 MB (the defaults) to 1.7 MB (32 tokens, d_model 512, 16 heads) pickled. The byte limit is the
# bound (issue 17: unique sentences grew the server); 32 MB still holds 128 results of a class at the defaults.
@st.cache_data(max_entries=128, max_size="32MB", ttl=3600, show_spinner=False)
def outcome(tokens: Tokens, settings: AttentionSettings) -> Outcome[AttentionSettings, AttentionLabResult]:
    with priority.interactive():  # a student waits for it: the generation engine steps aside (explorer.priority)
        return run(tokens, settings)


@st.cache_data(max_entries=64, show_spinner=False)
def study(tokens: Tokens, settings: AttentionSettings) -> SqrtDkStudy:
    # n_head and scaling do not enter the study: normalise them so those sliders reuse the cached result
    with priority.interactive():
        return sqrt_dk_study(tokens, dataclasses.replace(settings, n_head=1, n_kv_head=None, scale=True))


@st.cache_data(max_entries=64, show_spinner=False)
def params(d_model: int, n_head: int, n_kv_head: int) -> list[ParamRow]:
    return attention_params(d_model, n_head, n_kv_head)
