"""Streamlit glue of the generation lab: which models it offers, how they are shared, and each session's run.

The models are shared by every session (st.cache_resource, read-only). A run, with its KV cache and its private
random generator, belongs to one session: it lives in st.session_state and nowhere else, so its text so far
survives any stop and is drawn again on every rerun.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from ..admission import AdmissionQueue, Ticket
from ..generation import Generation, SpeedReport
from ..models.tiny import TINY_DECODERS, TinyModel, load_tiny
from .models import get_model
from ..safe_text import escape_markdown

REAL_MODEL = "smollm2-135m"
MODEL_CHOICES = (REAL_MODEL,) + TINY_DECODERS
MODEL_LABELS = {
    REAL_MODEL: "SmolLM2-135M-Instruct (trained weights, 4-bit release)",
    **{name: f"{name} (random weights: untrained)" for name in TINY_DECODERS},
}
STATE_KEY = "generation_lab"


@st.cache_resource(show_spinner=False)
def generation_queue() -> AdmissionQueue:
    """The server's one line for streaming runs and speed replays: a few at a time, the rest wait their turn (see
    explorer.admission for why more at once is slower for everyone)."""
    return AdmissionQueue()


def wait_for_turn(ticket: Ticket, slot) -> None:
    """Block until ``ticket`` is admitted, telling the student their place in ``slot`` (an st.empty) meanwhile.
    A stop or a new click while waiting raises out of here; the caller's ``with ticket`` gives the place back."""
    queue = generation_queue()
    while not ticket.wait(timeout=0.25):
        ahead = ticket.ahead()
        slot.info(f"The server is busy: {queue.running} run(s) are being written and {ahead} "
                  f"{'student is' if ahead == 1 else 'students are'} ahead of you. Yours starts by itself; "
                  "the page stays usable meanwhile.")
    slot.empty()


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
    """One session's generation lab: the current run and what was measured on it.

    With Streamlit's fast reruns, a click starts a new script run while the previous one may still be inside a
    step of the run (it stops at its next st call). So every change goes through a lock, the previous run is
    stopped with Generation.close() (safe from any thread), and a script run only clears the streaming mark of the
    run it streamed itself.
    """

    run: Generation | None = None
    started_with: tuple | None = None  # (model, prompt, chat, settings, use_cache) of the run
    number: int = 0  # counts runs, so widgets that belong to one run are fresh for the next
    streaming: Generation | None = None  # the run a script run is writing into the page; still set next rerun =
    # that script run was stopped or superseded before the end
    stopped: bool = False  # the student stopped the stream (or changed something mid-stream)
    speed: list[SpeedReport] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def start(self, run: Generation, started_with: tuple, *, stream: bool = False) -> Generation:
        """Make ``run`` the current run (``stream``: this script run writes it into the page); the previous one
        stops after the step it may be computing in another script run."""
        with self.lock:
            old, self.run, self.started_with = self.run, run, started_with
            self.number += 1
            self.streaming = run if stream else None
            self.stopped = False
            self.speed = []
        if old is not None:
            old.close()
        return run

    def run_to_step(self, started_with: tuple, new_run: Callable[[], Generation]) -> tuple[Generation, bool]:
        """The run "Next token" continues: the current one when it is unfinished and made with ``started_with``,
        else a new one. Returns (run, whether the settings changed under an earlier run)."""
        with self.lock:
            run = self.run
            if run is not None and run.finish is None and not run.closed and self.started_with == started_with:
                self.stopped = False
                return run, False
            changed = run is not None and self.started_with != started_with
        return self.start(new_run(), started_with), changed

    def end_stream(self, run: Generation) -> None:
        """The script run streaming ``run`` got to the end of it (or to the end of what it may write)."""
        with self.lock:
            if self.streaming is run:
                self.streaming = None

    def interrupted(self) -> bool:
        """Called at the top of every rerun: a stream that did not reach its end was stopped. The run itself is
        left paused between two tokens, so "Next token" can carry on from there."""
        with self.lock:
            if self.streaming is None:
                return False
            self.streaming = None
            self.stopped = True
            return True

    def reset(self) -> None:
        with self.lock:
            old = self.run
            self.run, self.started_with, self.streaming, self.stopped, self.speed = None, None, None, False, []
        if old is not None:
            old.close()


def text_markdown(text: str) -> str:
    """The model's output as a Markdown body that shows exactly its characters: generated text is not ours to
    trust (it can write ![x](http://...) as easily as any other string), and a line break stays a line break."""
    if not text.strip():
        return "*(no visible text yet)*"
    return escape_markdown(text).replace("\n", "  \n")


def lab_state() -> LabState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = LabState()
    return st.session_state[STATE_KEY]
