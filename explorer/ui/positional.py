"""Streamlit caches of the positional-encoding lab: its encoders, shared by every session, and what it computes."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ..labs.outcome import Outcome
from ..labs.positional import PositionalResult, PositionalSettings, attention_patterns, encoding_model, run
from ..model import Transformer
from ..models.toy_tokens import Tokens


@st.cache_resource(max_entries=24, show_spinner=False)
def model_for(positional: str, seed: int, theta: float) -> Transformer:
    # Shared between sessions: run_with_cache keeps its state per call (RunContext), never on the model.
    return encoding_model(positional, seed, theta)


@st.cache_data(max_entries=128, show_spinner=False)
def patterns_for(positional: str, seed: int, theta: float, tokens: Tokens) -> np.ndarray:
    return attention_patterns(model_for(positional, seed, theta), tokens, seed)


# One result is one section, pickled: 0.17 MB for the learned section at the page's largest tables (64 x 256, with the
# sinusoidal one beside it), at most 0.03 MB for RoPE, ALiBi or the shuffle at 32 tokens. The entry count is the
# bound: 64 results of the page stay below 11 MB, however many sentences the students type.
@st.cache_data(max_entries=64, show_spinner=False)
def outcome(tokens: Tokens, settings: PositionalSettings) -> Outcome[PositionalSettings, PositionalResult]:
    return run(tokens, settings, model=model_for)
