"""Streamlit glue of the tokenizer lab: its controls (each kept in the link under its settings' name) and the caches
of what it computes: the trained tokenizers are shared by every session (read-only after training), the results
are cached per setting."""
from __future__ import annotations

import streamlit as st

from .. import priority
from ..bpe import BPETokenizer
from ..labs.outcome import Outcome
from ..labs.tokenizer import (
    ALPHABETS, CORPUS_CHOICES, D_MODEL_MAX, TokenizerResult, TokenizerSettings, run, train, train_others,
)
from ..labs.tokenizer_compare import CostComparison, OtherTokenizers, RealRow, cost_comparison, real_rows
from ..limits import TOKENIZER_MAX_CORPUS_CHARS, TOKENIZER_MAX_MERGES, TOKENIZER_MAX_TEXT_CHARS
from .i18n import tr
from .url_state import Control, LabView, one_of, text, whole

DEFAULT = TokenizerSettings()

VIEW = LabView("tokenizer", [
    Control("corpus", DEFAULT.corpus, one_of(CORPUS_CHOICES)),
    Control("text", DEFAULT.text, text(TOKENIZER_MAX_CORPUS_CHARS)),
    Control("alphabet", DEFAULT.alphabet, one_of(ALPHABETS)),
    Control("merges", DEFAULT.merges, whole(1, TOKENIZER_MAX_MERGES)),
    Control("step", DEFAULT.step, whole(0, TOKENIZER_MAX_MERGES)),
    Control("sentence", DEFAULT.sentence, text(TOKENIZER_MAX_TEXT_CHARS)),
    Control("chinese", DEFAULT.chinese, text(TOKENIZER_MAX_TEXT_CHARS)),
    Control("english", DEFAULT.english, text(TOKENIZER_MAX_TEXT_CHARS)),
    Control("d_model", DEFAULT.d_model, whole(1, D_MODEL_MAX)),
])


def sidebar_settings() -> dict:
    """The corpus, its alphabet, the number of merges and the sentence every tab splits."""
    with st.sidebar:
        st.subheader(tr("tokenizer.sidebar.title"))
        corpus = st.selectbox(tr("tokenizer.sidebar.corpus"), CORPUS_CHOICES,
                              format_func=lambda c: tr(f"tokenizer.corpus.{c}"), key=VIEW.key("corpus"))
        pasted = ""
        if corpus == "custom":
            pasted = st.text_area(tr("tokenizer.sidebar.text"), key=VIEW.key("text"),
                                  max_chars=TOKENIZER_MAX_CORPUS_CHARS,
                                  help=tr("tokenizer.sidebar.text_help", cap=TOKENIZER_MAX_CORPUS_CHARS))
        else:
            pasted = st.session_state.get(VIEW.key("text"), "")
        alphabet = st.radio(tr("tokenizer.sidebar.alphabet"), ALPHABETS, horizontal=True,
                            format_func=lambda a: tr(f"tokenizer.alphabet.{a}"), key=VIEW.key("alphabet"))
        merges = int(st.number_input(tr("tokenizer.sidebar.merges"), 1, TOKENIZER_MAX_MERGES, step=10,
                                     key=VIEW.key("merges"),
                                     help=tr("tokenizer.sidebar.merges_help", cap=TOKENIZER_MAX_MERGES)))
        sentence = st.text_input(tr("tokenizer.sidebar.sentence"), key=VIEW.key("sentence"),
                                 max_chars=TOKENIZER_MAX_TEXT_CHARS)
    return dict(corpus=corpus, text=pasted if corpus == "custom" else "", alphabet=alphabet, merges=merges,
                sentence=sentence)


def _move(delta: int, high: int) -> None:
    key = VIEW.key("step")
    st.session_state[key] = min(max(int(st.session_state.get(key, 0)) + delta, 0), high)


def step_control(merges: int) -> int:
    """The merge shown: a slider with a step back and a step forward."""
    VIEW.keep_valid("step", lambda step: 0 <= step <= merges, min(DEFAULT.step, merges))
    # A slider's range is part of its identity: with a new number of merges Streamlit makes a new slider, which
    # would start at 0. Written back through the state, the merge shown stays where it was.
    st.session_state[VIEW.key("step")] = st.session_state[VIEW.key("step")]
    back, slider, forward = st.columns([1, 8, 1], vertical_alignment="bottom")
    back.button("◀", key=VIEW.key("_back"), on_click=_move, args=(-1, merges), help=tr("tokenizer.bpe.back"),
                width="stretch")
    forward.button("▶", key=VIEW.key("_forward"), on_click=_move, args=(1, merges), help=tr("tokenizer.bpe.forward"),
                   width="stretch")
    return slider.slider(tr("tokenizer.bpe.step"), 0, merges, key=VIEW.key("step"))


@st.cache_resource(max_entries=16, show_spinner=False)
def trained(corpus: str, text: str, merges: int, alphabet: str) -> BPETokenizer:
    with priority.interactive():  # a student waits for it: the generation engine steps aside (explorer.priority)
        return train(corpus, text, merges, alphabet)


@st.cache_resource(max_entries=8, show_spinner=False)
def others(corpus: str, text: str, merges: int) -> OtherTokenizers:
    with priority.interactive():
        return train_others(corpus, text, merges)


@st.cache_data(max_entries=128, show_spinner=False)
def real(sentence: str) -> tuple[RealRow, ...]:
    with priority.interactive():
        return real_rows(sentence)


@st.cache_data(max_entries=64, show_spinner=False)
def cost(chinese: str, english: str) -> CostComparison:
    with priority.interactive():
        return cost_comparison(chinese, english)


# A result holds a few hundred short labels and two curves of at most TOKENIZER_MAX_MERGES + 1 numbers: well under
# 0.1 MB pickled, so 64 entries stay below a few MB however many sentences the students type.
@st.cache_data(max_entries=64, show_spinner=False)
def outcome(settings: TokenizerSettings) -> Outcome[TokenizerSettings, TokenizerResult]:
    with priority.interactive():
        return run(settings, trained=trained, others=others, real=real, cost=cost)
