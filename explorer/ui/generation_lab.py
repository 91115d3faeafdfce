"""Streamlit glue of the generation lab: which models it offers, how they are shared, and each session's run.

The models are shared by every session (st.cache_resource, read-only). A run, with its KV cache and its private
random generator, belongs to one session: it lives in st.session_state and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from ..generation import Generation, SpeedReport
from ..tiny_models import TINY_DECODERS, TinyModel, load_tiny
from .models import get_model

REAL_MODEL = "smollm2-135m"
MODEL_CHOICES = (REAL_MODEL,) + TINY_DECODERS
MODEL_LABELS = {
    REAL_MODEL: "SmolLM2-135M-Instruct (real, trained weights)",
    **{name: f"{name} (random weights: untrained)" for name in TINY_DECODERS},
}
STATE_KEY = "generation_lab"


@st.cache_resource(max_entries=len(TINY_DECODERS), show_spinner=False)
def shared_tiny(name: str) -> TinyModel:
    return load_tiny(name)


def get_generator_model(name: str):
    """A PretrainedModel or a TinyModel: both have .model, .tokenizer, .config, .eos_token_ids, .supports_chat."""
    if name in TINY_DECODERS:
        return shared_tiny(name)
    return get_model(name)


@dataclass
class LabState:
    """One session's generation lab: the current run and what was measured on it."""

    run: Generation | None = None
    started_with: tuple | None = None  # (model, prompt, chat, settings, use_cache) of the run
    number: int = 0  # counts runs, so widgets that belong to one run are fresh for the next
    streaming: bool = False  # True while a stream is being written; still True on the next rerun = interrupted
    stopped: bool = False  # the student stopped the stream (or changed something mid-stream)
    speed: list[SpeedReport] = field(default_factory=list)

    def start(self, run: Generation, started_with: tuple) -> None:
        if self.run is not None:
            self.run.close()
        self.run, self.started_with = run, started_with
        self.number += 1
        self.streaming = self.stopped = False
        self.speed = []

    def interrupted(self) -> bool:
        """Called at the top of every rerun: a stream that did not reach its end was stopped. The run itself is
        left paused between two tokens, so "Next token" can carry on from there."""
        if not self.streaming:
            return False
        self.streaming = False
        self.stopped = True
        return True

    def reset(self) -> None:
        if self.run is not None:
            self.run.close()
        self.run, self.started_with, self.streaming, self.stopped, self.speed = None, None, False, False, []


def lab_state() -> LabState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = LabState()
    return st.session_state[STATE_KEY]
