"""The speculative-decoding tab of the inference lab: a prompt, a draft and k; one click runs plain greedy and
speculative decoding of the same prompt, timed in the same call, and shows the rounds coloured, the acceptance rate,
tokens per target forward beside the model, both speeds, and whether both texts are the same token for token.

Both runs take a few seconds of a shared 2-core server, so they run behind a button, one click at a time in the
process (a FIFO queue: two timed runs at once would slow each other and spoil both measurements), with the
interactive-priority gate held so the generation engine steps aside. The student's trained model belongs to one
session and is never put in a shared cache."""
from __future__ import annotations

import streamlit as st

from .. import priority
from ..admission import AdmissionQueue
from ..labs.inference_speculative import (DRAFTS, EXAMPLES, MAX_EXIT_LAYERS, MAX_NEW_TOKENS, MAX_NGRAM,
                                          MAX_PROMPT_CHARS, REAL_MODEL, TRAINED_MODEL, SpeculativeSettings,
                                          run_speculative)
from ..speculative import MAX_K
from ..viz.inference_speculative import legend_html, rounds_figure, rounds_html, speed_figure
from .common import chart, show_outcome
from .i18n import lang, say, tr
from .models import get_model
from .training import my_trained_model
from .url_state import Control, LabView, flag, one_of, show_flag, show_problems, text, whole

DEFAULT = SpeculativeSettings()
RESULT_KEY = "inference_speculative.outcome"  # session_state: the last click's outcome, shown while settings match

VIEW = LabView("inference_speculative", [
    Control("model", DEFAULT.model, one_of((REAL_MODEL, TRAINED_MODEL))),
    Control("prompt", DEFAULT.prompt, text(MAX_PROMPT_CHARS)),
    Control("chat", DEFAULT.chat, flag, show_flag),
    Control("draft", DEFAULT.draft, one_of(DRAFTS)),
    Control("k", DEFAULT.k, whole(1, MAX_K)),
    Control("exit_layers", DEFAULT.exit_layers, whole(1, MAX_EXIT_LAYERS)),
    Control("ngram", DEFAULT.ngram, whole(1, MAX_NGRAM)),
    Control("max_new_tokens", DEFAULT.max_new_tokens, whole(1, MAX_NEW_TOKENS)),
])


@st.cache_resource(show_spinner=False)
def _queue() -> AdmissionQueue:
    return AdmissionQueue(capacity=1)


def _use_example(name: str) -> None:
    prompt, chat = EXAMPLES[name]
    st.session_state[VIEW.key("prompt")] = prompt
    st.session_state[VIEW.key("chat")] = chat


def _controls():
    """The settings row; returns (settings, target model or None, trained model or None)."""
    mine = my_trained_model()
    choices = (REAL_MODEL,) + ((TRAINED_MODEL,) if mine is not None else ())
    VIEW.keep_valid("model", lambda name: name in choices, REAL_MODEL,
                    why=lambda value, shown: tr("inference_speculative.no_trained_link"))
    cols = st.columns([2, 2, 2, 2, 2])
    # The names are looked up once, in this run's language: a format_func that read the language when called
    # would name the options in another language wherever it is called outside this run (AppTest does).
    model_names = {n: tr(f"inference_speculative.model.{n}") for n in choices}
    draft_names = {d: tr(f"inference_speculative.draft.{d}") for d in DRAFTS}
    model = cols[0].selectbox(tr("inference_speculative.control.model"), choices, key=VIEW.key("model"),
                              format_func=model_names.__getitem__)
    draft = cols[1].selectbox(tr("inference_speculative.control.draft"), DRAFTS, key=VIEW.key("draft"),
                              format_func=draft_names.__getitem__,
                              help=tr("inference_speculative.control.draft_help"))
    k = cols[2].slider("k", 1, MAX_K, key=VIEW.key("k"), help=tr("inference_speculative.control.k_help"))
    target = mine if model == TRAINED_MODEL else get_model(REAL_MODEL)
    n_layer = target.config.n_layer
    if draft == "early_exit":
        top = max(1, min(MAX_EXIT_LAYERS, n_layer - 1))
        VIEW.keep_valid("exit_layers", lambda v: 1 <= v <= top, min(DEFAULT.exit_layers, top))
        exit_layers = cols[3].slider(tr("inference_speculative.control.exit_layers", n_layer=n_layer), 1,
                                     max(top, 2), key=VIEW.key("exit_layers"), disabled=n_layer < 3,
                                     help=tr("inference_speculative.control.exit_help"))
    else:
        exit_layers = st.session_state[VIEW.key("exit_layers")]
    if draft == "prompt_lookup":
        ngram = cols[3].slider(tr("inference_speculative.control.ngram"), 1, MAX_NGRAM, key=VIEW.key("ngram"),
                               help=tr("inference_speculative.control.ngram_help"))
    else:
        ngram = st.session_state[VIEW.key("ngram")]
    n_new = cols[4].slider(tr("inference_speculative.control.max_new_tokens"), 1, MAX_NEW_TOKENS,
                           key=VIEW.key("max_new_tokens"))
    prompt = st.text_area(tr("inference_speculative.control.prompt"), key=VIEW.key("prompt"),
                          max_chars=MAX_PROMPT_CHARS, height=90)
    row = st.columns([2, 1, 1, 1, 1, 2])
    chat = row[0].checkbox(tr("inference_speculative.control.chat"), key=VIEW.key("chat"),
                           disabled=not target.supports_chat, help=tr("inference_speculative.control.chat_help"))
    for col, name in zip(row[1:5], EXAMPLES):
        col.button(tr(f"inference_speculative.example.{name}"), key=f"inference_speculative.example.{name}",
                   on_click=_use_example, args=(name,), type="tertiary")
    settings = SpeculativeSettings(prompt=prompt, chat=bool(chat), model=model, draft=draft, k=int(k),
                                   exit_layers=int(exit_layers), ngram=int(ngram), max_new_tokens=int(n_new))
    return settings, target, mine, row[5]


def _run(settings: SpeculativeSettings, target, trained):
    with _queue().join() as ticket:
        waiting = st.empty()
        while not ticket.wait(0.25):
            waiting.caption(tr("inference_speculative.waiting", ahead=ticket.ahead()))
        waiting.empty()
        with priority.interactive():
            return run_speculative(settings, target, trained)


def render() -> None:
    """The tab: its controls, the Run button, and the last click's results while the settings are unchanged."""
    show_problems(VIEW.open())
    lg = lang()
    settings, target, trained, button_col = _controls()
    VIEW.publish()
    clicked = button_col.button(tr("inference_speculative.run"), type="primary", icon=":material/bolt:",
                                key="inference_speculative.run")
    if clicked:
        with st.spinner(tr("inference_speculative.running")):
            st.session_state[RESULT_KEY] = (settings, _run(settings, target, trained))
    last = st.session_state.get(RESULT_KEY)
    if last is None or last[0] != settings:
        st.caption(tr("inference_speculative.press_run"))
        _explain(lg)
        return
    outcome = last[1]
    show_outcome(outcome)
    result = outcome.result
    if result is None:
        return
    _numbers(result, outcome.settings)
    st.markdown(legend_html(lg), unsafe_allow_html=True)
    st.markdown(rounds_html(result, lg), unsafe_allow_html=True)
    chart(speed_figure(result, lg), "speculative_speed")
    chart(rounds_figure(result, lg), "speculative_rounds")
    notes = [tr("inference_speculative.timing_note")]
    if result.draft_unused is not None:
        notes.append(say(result.draft_unused))
    st.caption(" ".join(notes))
    _explain(lg)


def _numbers(result, used: SpeculativeSettings) -> None:
    cols = st.columns(5)
    if result.identical:
        cols[0].metric(tr("inference_speculative.metric.identical"), tr("inference_speculative.metric.yes"),
                       help=tr("inference_speculative.metric.identical_help", n=len(result.plain.tokens)))
    else:
        cols[0].metric(tr("inference_speculative.metric.identical"), tr("inference_speculative.metric.no"))
        st.warning(tr("inference_speculative.differ", i=result.first_difference + 1, gap=result.gap_there or 0.0))
    if result.alpha is None:
        cols[1].metric(tr("inference_speculative.metric.alpha"), "—",
                       help=tr("inference_speculative.metric.no_proposals"))
    else:
        cols[1].metric(tr("inference_speculative.metric.alpha"), f"{100 * result.alpha:.0f}%",
                       help=tr("inference_speculative.metric.alpha_help", accepted=result.spec.accepted,
                               proposed=result.spec.proposed))
    expected = result.expected_tokens_per_forward
    cols[2].metric(tr("inference_speculative.metric.per_forward"), f"{result.spec.tokens_per_forward:.2f}",
                   help=tr("inference_speculative.metric.per_forward_help", n=len(result.spec.tokens),
                           forwards=result.spec.forwards))
    cols[3].metric(tr("inference_speculative.metric.model"), "—" if expected is None else f"{expected:.2f}",
                   help=tr("inference_speculative.metric.model_help", k=used.k))
    cols[4].metric(tr("inference_speculative.metric.speedup"), f"×{result.speedup:.2f}",
                   help=tr("inference_speculative.metric.speedup_help", plain=result.plain.tokens_per_second,
                           spec=result.spec.tokens_per_second))


def _explain(lg: str) -> None:
    with st.expander(tr("inference_speculative.how")):
        st.markdown(tr("inference_speculative.how_text"))
        st.latex(r"\mathbb{E}[\text{tokens per forward}] = 1 + \alpha + \dots + \alpha^{k} = "
                 r"\frac{1-\alpha^{k+1}}{1-\alpha}")
