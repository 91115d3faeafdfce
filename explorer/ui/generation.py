"""Streamlit glue of the generation lab: the models it offers and how they are shared, the decoding controls that
build its settings, the server's line for runs, and each session's run.

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
from ..generation import Generation
from ..labs.generation import REAL_MODEL, CacheComparison, GenerationSettings
from ..models import LoadedModel
from ..models.tiny import TINY_DECODERS, TinyModel, load_tiny
from ..safe_text import escape_markdown
from ..sampling import MAX_NEW_TOKENS
from .models import get_model

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


def get_generator_model(name: str) -> LoadedModel:
    if name in TINY_DECODERS:
        return shared_tiny(name)
    return get_model(name)


DEFAULTS = GenerationSettings()


def decoding_controls(model: str, prompt: str, chat: bool) -> GenerationSettings:
    """The decoding widgets (in the current container), with the model and prompt chosen beside them, as the
    lab's settings; checking them is the lab's job (explorer.labs.generation.run)."""
    greedy = st.radio("Decoding", ["Sampling", "Greedy"], index=int(DEFAULTS.greedy), horizontal=True,
                      key="gen_decoding", help="Greedy always takes the most likely token; sampling draws one at "
                                               "random from the probabilities.") == "Greedy"
    temperature = st.slider("Temperature T", 0.05, 2.0, DEFAULTS.temperature, 0.05, key="gen_temperature",
                            disabled=greedy)
    c1, c2 = st.columns(2)
    top_k = c1.slider("top-k (0 = off)", 0, 200, DEFAULTS.top_k, key="gen_top_k", disabled=greedy)
    top_p = c2.slider("top-p", 0.05, 1.0, DEFAULTS.top_p, 0.05, key="gen_top_p", disabled=greedy)
    min_p = c1.slider("min-p", 0.0, 0.5, DEFAULTS.min_p, 0.01, key="gen_min_p", disabled=greedy)
    repetition = c2.slider("Repetition penalty", 0.5, 2.0, DEFAULTS.repetition_penalty, 0.05, key="gen_repetition")
    max_new = c1.slider("Max new tokens", 1, MAX_NEW_TOKENS, DEFAULTS.max_new_tokens, key="gen_max_new")
    seed = c2.number_input("Seed", 0, 2**31 - 1, DEFAULTS.seed, key="gen_seed", disabled=greedy,
                           help="The same seed and settings give the same text.")
    use_cache = st.toggle("KV cache", DEFAULTS.use_cache, key="gen_cache",
                          help="Keep every layer's keys and values so each step only runs the newest token.")
    return GenerationSettings(model=model, prompt=prompt, chat=chat, greedy=greedy, temperature=temperature,
                              top_k=top_k, top_p=top_p, min_p=min_p, repetition_penalty=repetition,
                              max_new_tokens=max_new, seed=int(seed), use_cache=use_cache)


@dataclass
class LabState:
    """One session's generation lab: the current run and what was measured on it.

    With Streamlit's fast reruns, a click starts a new script run while the previous one may still be inside a
    step of the run (it stops at its next st call). So every change goes through a lock, the previous run is
    stopped with Generation.close() (safe from any thread), and a script run only clears the streaming mark of the
    run it streamed itself.
    """

    run: Generation | None = None
    started_with: object = None  # what the run was started from (the page: its GenerationSettings)
    number: int = 0  # counts runs, so widgets that belong to one run are fresh for the next
    streaming: Generation | None = None  # the run a script run is writing into the page; still set next rerun =
    # that script run was stopped or superseded before the end
    stopped: bool = False  # the student stopped the stream (or changed something mid-stream)
    speed: CacheComparison | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def start(self, run: Generation, started_with: object, *, stream: bool = False) -> Generation:
        """Make ``run`` the current run (``stream``: this script run writes it into the page); the previous one
        stops after the step it may be computing in another script run."""
        with self.lock:
            old, self.run, self.started_with = self.run, run, started_with
            self.number += 1
            self.streaming = run if stream else None
            self.stopped = False
            self.speed = None
        if old is not None:
            old.close()
        return run

    def run_to_step(self, started_with: object, new_run: Callable[[], Generation]) -> tuple[Generation, bool]:
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
            self.run, self.started_with, self.streaming, self.stopped, self.speed = None, None, None, False, None
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
