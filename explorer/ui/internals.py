"""Streamlit glue of the model-internals lab: the widgets that build its settings, and the caches of its expensive
parts. Results are keyed by model name and text and kept in ``st.cache_data`` (copied per session), never written
onto the shared model."""
from __future__ import annotations

import streamlit as st

from ..labs.internals import MAX_TOKENS, InternalsResult, InternalsSettings, Steps, run
from ..labs.internals_passes import (
    Ablation, Head, Internals, LogitLens, ablate, analyze, head_name, logit_lens, parse_head_name,
)
from ..labs.outcome import Outcome
from ..models import Encoded, LoadedModel
from .models import shared_model

DEFAULTS = InternalsSettings()


def encode(name: str, text: str, chat: bool) -> Encoded:
    return shared_model(name).encode(text, chat=chat, max_tokens=MAX_TOKENS)


# Every head's map and the residual stream: 1.5 MiB pickled for 16 SmolLM2 tokens, 8.8 MiB for the 64 the lab
# allows. The byte limit is the bound (issue 17: unique texts grew the server): 64 MB holds 40 students' own short
# texts, or 7 of the longest.
@st.cache_data(max_entries=64, max_size="64MB", ttl=3600, show_spinner=False)
def cached_analysis(name: str, text: str, chat: bool) -> Internals:
    return analyze(shared_model(name), encode(name, text, chat))


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def cached_lens(name: str, text: str, chat: bool) -> LogitLens:
    return logit_lens(shared_model(name), cached_analysis(name, text, chat))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def cached_ablation(name: str, text: str, chat: bool, heads: tuple[tuple[int, int], ...],
                    compare: tuple[str, ...]) -> Ablation:
    pm = shared_model(name)
    return ablate(pm, encode(name, text, chat), heads, cached_analysis(name, text, chat), compare=compare)


class CachedSteps(Steps):
    """The lab's expensive parts from the caches above (the shared model of ``settings.model``)."""

    def analysis(self, model: LoadedModel, settings: InternalsSettings) -> Internals:
        return cached_analysis(settings.model, settings.text, settings.chat)

    def lens(self, model: LoadedModel, settings: InternalsSettings, base: Internals) -> LogitLens:
        with st.spinner("Reading every layer through the unembedding…"):
            return cached_lens(settings.model, settings.text, settings.chat)

    def ablation(self, model: LoadedModel, settings: InternalsSettings, base: Internals) -> Ablation:
        return cached_ablation(settings.model, settings.text, settings.chat, settings.ablated, settings.compare)


def outcome(model: LoadedModel, settings: InternalsSettings) -> Outcome[InternalsSettings, InternalsResult]:
    return run(model, settings, CachedSteps())


def grid_key(name: str) -> str:
    """The key of the layers x heads grid, whose clicks move the zoom pickers."""
    return f"grid_{name}"


def zoom_pickers(name: str, n_layer: int, n_head: int) -> tuple[int, int]:
    """The layer and head to zoom into; a click on a tile of the grid (last run's selection) moves them there."""
    layer_key, head_key, applied_key = f"zoom_layer_{name}", f"zoom_head_{name}", f"grid_applied_{name}"
    event = st.session_state.get(grid_key(name))
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata") is not None:
        clicked = tuple(int(v) for v in points[0]["customdata"])
        if st.session_state.get(applied_key) != clicked:  # a new click: move the pickers to it
            st.session_state[applied_key] = clicked
            st.session_state[layer_key], st.session_state[head_key] = clicked
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", list(range(n_layer)), key=layer_key)
    head = c2.selectbox("Head", list(range(n_head)), key=head_key)
    return layer, head


def head_view_controls(name: str, n_layer: int, n_head: int, layer: int) -> tuple[int, tuple[int, ...], float]:
    """The head view's layer (at first the zoomed one), heads and line threshold."""
    c1, c2, c3 = st.columns([1, 2, 1])
    view_layer = c1.selectbox("Layer", list(range(n_layer)), key=f"view_layer_{name}", index=min(layer, n_layer - 1))
    view_heads = c2.multiselect("Heads", list(range(n_head)), default=[h for h in DEFAULTS.view_heads if h < n_head],
                                key=f"view_heads_{name}", format_func=lambda h: f"head {h}")
    min_weight = c3.slider("Hide weights below", 0.0, 0.9, DEFAULTS.min_weight, 0.05, key=f"view_min_{name}")
    return view_layer, tuple(view_heads), min_weight


def query_picker(name: str, labels: list[str]) -> int | None:
    """The token whose lines the head view shows, None for every token."""
    choice = st.selectbox("Only the lines of token", ["(all tokens)"] + [f"{i}: {t}" for i, t in enumerate(labels)],
                          key=f"view_query_{name}")
    return None if choice == "(all tokens)" else int(choice.split(":", 1)[0])


def ablation_picker(name: str, n_layer: int, n_head: int) -> tuple[Head, ...]:
    """The heads to zero: picked one by one, or a whole layer."""
    options = [head_name((layer, head)) for layer in range(n_layer) for head in range(n_head)]
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Heads to zero (L = layer, H = head)", options, key=f"ablate_{name}",
                            placeholder="e.g. L0.H1")
    whole = c2.selectbox("…or a whole layer", ["(none)"] + [f"layer {i}" for i in range(n_layer)],
                         key=f"ablate_layer_{name}")
    heads = [parse_head_name(h) for h in chosen]
    if whole != "(none)":
        heads += [(int(whole.split()[1]), head) for head in range(n_head)]
    return tuple(sorted(set(heads)))


def compare_box() -> tuple[str, ...]:
    """The encoder's comparison sentences, one per line (blank lines skipped)."""
    text = st.text_area("Comparison sentences (one per line)", "\n".join(DEFAULTS.compare), key="compare_text",
                        height=90)
    return tuple(line.strip() for line in text.splitlines() if line.strip())
