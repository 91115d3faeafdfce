"""Streamlit glue of the model-internals lab: its controls (kept in the address: ``VIEW``), the widgets that build
its settings, and the caches of its expensive parts. Results are keyed by model name and text and kept in
``st.cache_data`` (copied per session), never written onto the shared model."""
from __future__ import annotations

import streamlit as st

from ..labs.internals import (DEFAULT_TEXT, MAX_TOKENS, TEXT_MAX_CHARS, TRAINED_MODEL, InternalsResult,
                              InternalsSettings, Steps, run)
from ..labs.internals_facts import HEAD_STATISTICS
from ..labs.internals_passes import (
    Ablation, Head, Internals, LogitLens, ablate, analyze, head_name, logit_lens, parse_head_name,
)
from .. import priority
from ..i18n import Msg
from ..labs.outcome import Outcome
from ..models import Encoded, LoadedModel
from ..models.pretrained import MODEL_NAMES
from .i18n import tr
from .models import shared_model
from .training import trained_example_text
from .url_state import Control, LabView, flag, number, one_of, show_flag, text, whole

DEFAULTS = InternalsSettings()
_MOST_LAYERS, _MOST_HEADS = 30, 12  # the largest of the lab's models (SmolLM2's layers, MiniLM's heads)


def _ints(text_: str) -> list[int]:
    values = [whole(0, _MOST_HEADS - 1)(part) for part in text_.split(",") if part.strip()]
    if len(set(values)) != len(values):
        raise ValueError(text_)
    return values


def _heads(text_: str) -> list[str]:
    """'L3.H2,L10.H0' -> the multiselect's names; a name that is not a head is a bad value."""
    names = [head_name(parse_head_name(part)) for part in text_.split(",") if part.strip()]
    for layer, head in map(parse_head_name, names):
        if layer >= _MOST_LAYERS or head >= _MOST_HEADS:
            raise ValueError(text_)
    return names


def _joined(values) -> str:
    return ",".join(map(str, values))


# Every control of the lab under its settings field's name (the head view's token filter, the summary's statistic
# and the whole-layer ablation are controls that feed the settings). Ranges here are those of the largest model;
# ``fit_to_model`` then keeps each within the chosen one.
VIEW = LabView("internals", [
    Control("model", DEFAULTS.model, one_of(MODEL_NAMES + (TRAINED_MODEL,))),
    Control("text", DEFAULTS.text, text(TEXT_MAX_CHARS)),
    Control("chat", DEFAULTS.chat, flag, show_flag),
    Control("statistic", HEAD_STATISTICS[0], one_of(HEAD_STATISTICS)),
    Control("layer", DEFAULTS.layer, whole(0, _MOST_LAYERS - 1)),
    Control("head", DEFAULTS.head, whole(0, _MOST_HEADS - 1)),
    Control("view_layer", DEFAULTS.view_layer, whole(0, _MOST_LAYERS - 1)),
    Control("view_heads", list(DEFAULTS.view_heads), _ints, _joined),
    Control("min_weight", DEFAULTS.min_weight, number(0.0, 0.9)),
    Control("query", None, whole(0, MAX_TOKENS - 1)),
    Control("ablated", [head_name(h) for h in DEFAULTS.ablated], _heads, _joined),
    Control("ablated_layer", None, whole(0, _MOST_LAYERS - 1)),
    Control("compare", "\n".join(DEFAULTS.compare), text(TEXT_MAX_CHARS)),
])


def fit_to_model(name: str, n_layer: int, n_head: int) -> None:
    """After the model picker, before the other widgets: every control within the chosen model (a link made for
    SmolLM2's 30 layers opened on MiniLM's 6, a switch of model), and the other model's example text replaced by
    this one's. A value the link asked for that the model does not have is named (url_state.keep_valid names only
    what came from the link: a switch of model moves the controls without a word, the student made no mistake)."""
    def outside(control: str):
        return lambda value, shown: Msg("internals.link_outside_model", name=control, value=value, model=name,
                                        shown=shown)

    others = {DEFAULT_TEXT[other] for other in DEFAULT_TEXT if other != name}
    VIEW.keep_valid("text", lambda value: value not in others, DEFAULT_TEXT.get(name) or trained_example_text())
    VIEW.keep_valid("layer", lambda value: value < n_layer, n_layer - 1, outside("layer"))
    VIEW.keep_valid("view_layer", lambda value: value < n_layer, n_layer - 1, outside("view_layer"))
    VIEW.keep_valid("head", lambda value: value < n_head, n_head - 1, outside("head"))
    VIEW.keep_valid("view_heads", lambda value: all(h < n_head for h in value),
                    [h for h in VIEW.value("view_heads") if h < n_head], outside("view_heads"))
    VIEW.keep_valid("ablated", lambda value: all(_fits(h, n_layer, n_head) for h in value),
                    [h for h in VIEW.value("ablated") if _fits(h, n_layer, n_head)], outside("ablated"))
    VIEW.keep_valid("ablated_layer", lambda value: value is None or value < n_layer, None, outside("ablated_layer"))


def _fits(name: str, n_layer: int, n_head: int) -> bool:
    layer, head = parse_head_name(name)
    return layer < n_layer and head < n_head


def encode(name: str, text_: str, chat: bool) -> Encoded:
    return shared_model(name).encode(text_, chat=chat, max_tokens=MAX_TOKENS)


# Every head's map and the residual stream: 1.5 MiB pickled for 16 SmolLM2 tokens, 8.8 MiB for the 64 the lab
# allows. The byte limit is the bound (issue 17: unique texts grew the server): 64 MB holds 40 students' own short
# texts, or 7 of the longest.
@st.cache_data(max_entries=64, max_size="64MB", ttl=3600, show_spinner=False)
def cached_analysis(name: str, text_: str, chat: bool) -> Internals:
    with priority.interactive():  # a student waits for it: the generation engine steps aside (explorer.priority)
        return analyze(shared_model(name), encode(name, text_, chat))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def cached_lens(name: str, text_: str, chat: bool) -> LogitLens:
    with priority.interactive():
        return logit_lens(shared_model(name), cached_analysis(name, text_, chat))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def cached_ablation(name: str, text_: str, chat: bool, heads: tuple[tuple[int, int], ...],
                    compare: tuple[str, ...]) -> Ablation:
    with priority.interactive():
        pm = shared_model(name)
        return ablate(pm, encode(name, text_, chat), heads, cached_analysis(name, text_, chat), compare=compare)


class CachedSteps(Steps):
    """The lab's expensive parts from the caches above (the shared model of ``settings.model``)."""

    def analysis(self, model: LoadedModel, settings: InternalsSettings) -> Internals:
        return cached_analysis(settings.model, settings.text, settings.chat)

    def lens(self, model: LoadedModel, settings: InternalsSettings, base: Internals) -> LogitLens:
        with st.spinner(tr("internals.spinner_lens")):
            return cached_lens(settings.model, settings.text, settings.chat)

    def ablation(self, model: LoadedModel, settings: InternalsSettings, base: Internals) -> Ablation:
        return cached_ablation(settings.model, settings.text, settings.chat, settings.ablated, settings.compare)


def outcome(model: LoadedModel, settings: InternalsSettings) -> Outcome[InternalsSettings, InternalsResult]:
    if settings.model == TRAINED_MODEL:  # one session's own model: never in a cache keyed by its name
        with priority.interactive():
            return run(model, settings, Steps())
    return run(model, settings, CachedSteps())


def summary_key(name: str) -> str:
    """The key of the layers x heads summary, whose clicks move the layer and head pickers."""
    return f"internals.summary_{name}"


def statistic_picker() -> str:
    return st.radio(tr("internals.statistic"), HEAD_STATISTICS, key=VIEW.key("statistic"), horizontal=True,
                    format_func=lambda s: tr(f"internals.stat.{s}"), help=tr("internals.statistic_help"))


def layer_head_pickers(name: str, n_layer: int, n_head: int) -> tuple[int, int]:
    """The layer whose heads are drawn and the head zoomed into; a click on a cell of the summary (last run's
    selection) moves them there."""
    applied_key = f"internals.summary_applied_{name}"
    event = st.session_state.get(summary_key(name))
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata") is not None:
        clicked = tuple(int(v) for v in points[0]["customdata"])
        if st.session_state.get(applied_key) != clicked:  # a new click: move the pickers to it
            st.session_state[applied_key] = clicked
            st.session_state[VIEW.key("layer")], st.session_state[VIEW.key("head")] = clicked
    c1, c2 = st.columns([3, 1])
    layer = c1.slider(tr("internals.layer"), 0, n_layer - 1, key=VIEW.key("layer"))
    head = c2.selectbox(tr("internals.head"), list(range(n_head)), key=VIEW.key("head"))
    return layer, head


def head_view_controls(n_layer: int, n_head: int) -> tuple[int, tuple[int, ...], float]:
    """The head view's layer, heads and line threshold."""
    c1, c2, c3 = st.columns([1, 2, 1])
    view_layer = c1.selectbox(tr("internals.layer"), list(range(n_layer)), key=VIEW.key("view_layer"))
    view_heads = c2.multiselect(tr("internals.heads"), list(range(n_head)), key=VIEW.key("view_heads"),
                                format_func=lambda h: tr("internals.fig.head_n", h=h))
    min_weight = c3.slider(tr("internals.min_weight"), 0.0, 0.9, step=0.05, key=VIEW.key("min_weight"))
    return view_layer, tuple(view_heads), min_weight


def query_picker(labels: list[str]) -> int | None:
    """The token whose lines the head view shows, None for every token."""
    VIEW.keep_valid("query", lambda q: q is None or q < len(labels), None)
    return st.selectbox(tr("internals.query"), [None, *range(len(labels))], key=VIEW.key("query"),
                        format_func=lambda i: tr("internals.all_tokens") if i is None else f"{i}: {labels[i]}")


def ablation_picker(n_layer: int, n_head: int) -> tuple[Head, ...]:
    """The heads to zero: picked one by one, or a whole layer."""
    options = [head_name((layer, head)) for layer in range(n_layer) for head in range(n_head)]
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect(tr("internals.ablated"), options, key=VIEW.key("ablated"),
                            placeholder=tr("internals.ablated_placeholder"))
    whole_layer = c2.selectbox(tr("internals.ablated_layer"), [None, *range(n_layer)], key=VIEW.key("ablated_layer"),
                               format_func=lambda i: tr("internals.no_layer") if i is None else
                               tr("internals.fig.layer_n", n=i))
    heads = [parse_head_name(h) for h in chosen]
    if whole_layer is not None:
        heads += [(whole_layer, head) for head in range(n_head)]
    return tuple(sorted(set(heads)))


def compare_box() -> tuple[str, ...]:
    """The encoder's comparison sentences, one per line (blank lines skipped)."""
    text_ = st.text_area(tr("internals.compare"), key=VIEW.key("compare"), height=90, max_chars=TEXT_MAX_CHARS)
    return tuple(line.strip() for line in text_.splitlines() if line.strip())
