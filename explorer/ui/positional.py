"""Streamlit glue of the positional-encoding lab: its controls (each kept in the link under its settings' name),
its encoders, shared by every session, and the caches of what it computes."""
from __future__ import annotations

import numpy as np
import streamlit as st

from .. import priority
from ..config import POSITIONALS
from ..labs.outcome import Outcome
from ..labs.positional import (
    LAB_N_HEAD, ROPE_THETAS, SEED_MAX, PositionalResult, PositionalSettings, attention_patterns, encoding_model, run,
)
from ..model import Transformer
from ..models.toy_tokens import DEFAULT_SENTENCE, Tokens
from .i18n import tr
from .url_state import Control, LabView, one_of, text, whole

# 64 x 256 cells is as much as a heatmap shows legibly (and sends quickly to 40 browsers)
MAX_SHOWN_POSITIONS = 64
D_MODELS = (8, 16, 32, 64, 128, 256)
D_HEADS = (8, 16, 32, 64, 128)
MAX_SHOWN_ALIBI_HEADS = 16
DEFAULT = PositionalSettings()


def default_dims(width: int) -> list[int]:
    """The waves drawn first: the two fastest dimensions, a slower pair, the middle one and the slowest sine."""
    return list(dict.fromkeys(d for d in (0, 1, 6, 7, width // 2, width - 2) if 0 <= d < width))


def _dims(value: str) -> list[int]:
    dims = [int(d) for d in value.split(",")] if value.strip() else []
    if len(set(dims)) != len(dims) or not all(0 <= d < max(D_MODELS) for d in dims):
        raise ValueError(value)
    return dims


def _theta(value: str) -> float:
    theta = float(value)
    if theta not in ROPE_THETAS:
        raise ValueError(value)
    return theta


VIEW = LabView("positional", [
    Control("sentence", DEFAULT_SENTENCE, text(400)),
    Control("positional", DEFAULT.positional, one_of(POSITIONALS)),
    Control("n_pos", DEFAULT.n_pos, whole(2, MAX_SHOWN_POSITIONS)),
    Control("d_model", DEFAULT.d_model, one_of(D_MODELS)),
    Control("dims", default_dims(DEFAULT.d_model), _dims, lambda dims: ",".join(map(str, dims))),
    Control("d_head", DEFAULT.d_head, one_of(D_HEADS)),
    Control("pair", DEFAULT.pair, whole(0, max(D_HEADS) // 2 - 1)),
    Control("alibi_heads", DEFAULT.alibi_heads, whole(1, MAX_SHOWN_ALIBI_HEADS)),
    Control("shuffle_seed", DEFAULT.shuffle_seed, whole(0, SEED_MAX)),
    Control("perm_encoding", DEFAULT.perm_encoding, one_of(POSITIONALS)),
    Control("perm_head", 1, whole(1, LAB_N_HEAD)),
    Control("theta", DEFAULT.theta, _theta, lambda theta: f"{theta:.0f}"),
    Control("seed", DEFAULT.seed, whole(0, SEED_MAX)),
    Control("effect_head", 1, whole(1, LAB_N_HEAD)),
])


def encoding_name(positional: str) -> str:
    return tr(f"positional.encoding.{positional}")


def sidebar_settings() -> PositionalSettings:
    """The encoding explored and its section's controls, then the seed and θ every section shares, in the
    sidebar; what the student asked for, checked later by ``run``. A section's controls appear with it only, and
    the settings carry the defaults of the others: they change nothing drawn, so they must not split the cache."""
    with st.sidebar:
        st.subheader(tr("positional.sidebar.title"))
        positional = st.radio(tr("positional.sidebar.positional"), POSITIONALS, format_func=encoding_name,
                              key=VIEW.key("positional"))
        section = {}
        if positional in ("sinusoidal", "learned"):
            section["n_pos"] = st.slider(tr("positional.sidebar.n_pos"), 2, MAX_SHOWN_POSITIONS, key=VIEW.key("n_pos"))
            section["d_model"] = st.select_slider("d_model", D_MODELS, key=VIEW.key("d_model"))
        elif positional == "rope":
            d_head = section["d_head"] = st.select_slider("d_head", D_HEADS, key=VIEW.key("d_head"))
            VIEW.keep_valid("pair", lambda pair: pair < d_head // 2, 0)
            section["pair"] = st.slider(tr("positional.sidebar.pair"), 0, d_head // 2 - 1, key=VIEW.key("pair"))
        elif positional == "alibi":
            section["alibi_heads"] = st.slider(tr("positional.sidebar.alibi_heads"), 1, MAX_SHOWN_ALIBI_HEADS,
                                               key=VIEW.key("alibi_heads"))
        else:
            section["shuffle_seed"] = int(st.number_input(tr("positional.sidebar.shuffle_seed"), 0, SEED_MAX,
                                                          key=VIEW.key("shuffle_seed")))
            section["perm_encoding"] = st.selectbox(tr("positional.sidebar.perm_encoding"), POSITIONALS,
                                                    format_func=encoding_name, key=VIEW.key("perm_encoding"))
        theta = st.select_slider(tr("positional.sidebar.theta"), ROPE_THETAS, key=VIEW.key("theta"),
                                 format_func=lambda theta: f"{theta:,.0f}", help=tr("positional.sidebar.theta_help"))
        seed = int(st.number_input(tr("positional.sidebar.seed"), 0, SEED_MAX, key=VIEW.key("seed")))
    return PositionalSettings(positional=positional, theta=theta, seed=seed, **section)


def dims_picker(width: int) -> list[int]:
    """The dimensions of the sinusoidal table drawn as waves (those past a narrower table are dropped)."""
    VIEW.keep_valid("dims", lambda dims: all(d < width for d in dims), default_dims(width))
    return st.multiselect(tr("positional.sin.dims"), list(range(width)), key=VIEW.key("dims"))


def head_slider(name: str) -> int:
    """One head of the lab's layer to draw (``perm_head``, ``effect_head``), 0-based for the figures."""
    return st.slider(tr("positional.head"), 1, LAB_N_HEAD, key=VIEW.key(name)) - 1


@st.cache_resource(max_entries=24, show_spinner=False)
def model_for(positional: str, seed: int, theta: float) -> Transformer:
    # Shared between sessions: run_with_cache keeps its state per call (RunContext), never on the model.
    with priority.interactive():  # a student waits for it: the generation engine steps aside (explorer.priority)
        return encoding_model(positional, seed, theta)


@st.cache_data(max_entries=128, show_spinner=False)
def patterns_for(positional: str, seed: int, theta: float, tokens: Tokens) -> np.ndarray:
    with priority.interactive():
        return attention_patterns(model_for(positional, seed, theta), tokens, seed)


# One result is one section, pickled: 0.17 MB for the learned section at the page's largest tables (64 x 256, with the
# sinusoidal one beside it), at most 0.03 MB for RoPE, ALiBi or the shuffle at 32 tokens. The entry count is the
# bound: 64 results of the page stay below 11 MB, however many sentences the students type.
@st.cache_data(max_entries=64, show_spinner=False)
def outcome(tokens: Tokens, settings: PositionalSettings) -> Outcome[PositionalSettings, PositionalResult]:
    with priority.interactive():
        return run(tokens, settings, model=model_for)
