"""Streamlit glue of the generation lab: the models it offers and how they are shared, the decoding controls that
build its settings, the server's line for runs, and each session's run.

The models are shared by every session (st.cache_resource, read-only). A run, with its KV cache and its private
random generator, belongs to one session: it lives in st.session_state and nowhere else, so its text so far
survives any stop and is drawn again on every rerun.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import streamlit as st

from ..admission import AdmissionQueue, Ticket
from ..engine import engine_stats
from ..generation import Generation, pin_chat_template
from ..i18n import t
from ..labs.generation import MODEL_CHOICES, REAL_MODEL, TRAINED_MODEL, CacheComparison, GenerationSettings
from ..limits import GENERATION_PROMPT_MAX_CHARS
from ..models import LoadedModel
from ..models.quantization import smollm2_weights
from ..models.tiny import TINY_DECODERS, TinyModel, load_tiny
from ..safe_text import escape_markdown
from ..sampling import MAX_NEW_TOKENS
from .i18n import lang, tr
from .models import get_model
from .training import my_trained_model
from .url_state import Control, LabView, flag, number, one_of, show_flag, text, whole

STATE_KEY = "generation_lab"


@st.cache_resource(show_spinner=False)
def generation_queue() -> AdmissionQueue:
    """The server's one line for speed replays (timed runs, alone as far as possible): a few at a time, the rest
    wait their turn (see explorer.admission). Streaming runs wait in their model's engine instead
    (wait_for_engine)."""
    return AdmissionQueue()


def wait_for_turn(ticket: Ticket, slot, lang: str) -> None:
    """Block until ``ticket`` is admitted, telling the student their place in ``slot`` (an st.empty) meanwhile, in
    ``lang`` (this may run outside the page's own thread). A stop or a new click while waiting raises out of here;
    the caller's ``with ticket`` gives the place back."""
    queue = generation_queue()
    while not ticket.wait(timeout=0.25):
        ahead = ticket.ahead()
        slot.info(t(lang, "generation.queue.one_ahead" if ahead == 1 else "generation.queue.many_ahead",
                    running=queue.running, ahead=ahead))
    slot.empty()


def wait_for_engine(run: Generation, slot, lang: str, poll_s: float = 0.25) -> None:
    """Join the engine's line for ``run`` and block while it waits for a slot (explorer.engine decodes a few runs
    together, the rest wait in arrival order), telling the student their place in ``slot`` meanwhile. A stop or a
    new click while waiting raises out of here; a run that never started then leaves the line."""
    place_of = getattr(run, "place", None)  # a run of a remote engine waits in that engine, out of our sight
    if place_of is None:
        return
    waited = False
    try:
        place = place_of()
        while place > 0:
            waited = True
            running = engine_stats(run.model)["running"]
            slot.info(t(lang, "engine.queue.first" if place == 1 else "engine.queue.place", place=place,
                        running=running))
            time.sleep(poll_s)
            place = place_of()
    except BaseException:
        if not run.steps:
            run.close()
        raise
    if waited:  # what the slot said before (a new run's notice) stays
        slot.empty()


@st.cache_resource(max_entries=len(TINY_DECODERS), show_spinner=False)
def shared_tiny(name: str) -> TinyModel:
    return load_tiny(name)


@st.cache_resource(max_entries=1, show_spinner=False)
def pinned_chat_template(name: str) -> int:
    """Once per process: the chat template's fixed beginning kept in the shared model's engine (its tokens)."""
    pm = get_model(name)
    return pin_chat_template(pm.model, pm.tokenizer)


def get_generator_model(name: str) -> LoadedModel:
    if name == TRAINED_MODEL and my_trained_model() is not None:
        return my_trained_model()  # this session's own, from the training lab
    if name in TINY_DECODERS:
        return shared_tiny(name)
    pinned_chat_template(name)  # a class's chat prompts never read the system prompt (explorer.engine)
    return get_model(name)


def model_choices() -> tuple[str, ...]:
    """The shared models, and this session's trained model once it has one (explorer.ui.training)."""
    return MODEL_CHOICES + ((TRAINED_MODEL,) if my_trained_model() is not None else ())


DEFAULTS = GenerationSettings()
# The controls' ranges, shared by the widgets and by what a link may ask for.
TEMPERATURE = dict(min_value=0.05, max_value=2.0, step=0.05)
TOP_K = dict(min_value=0, max_value=200)
TOP_P = dict(min_value=0.05, max_value=1.0, step=0.05)
MIN_P = dict(min_value=0.0, max_value=0.5, step=0.01)
REPETITION = dict(min_value=0.5, max_value=2.0, step=0.05)
NEW_TOKENS = dict(min_value=1, max_value=MAX_NEW_TOKENS)
SEED = dict(min_value=0, max_value=2**31 - 1)


def _range(widget: dict) -> tuple:
    return widget["min_value"], widget["max_value"]


def _short(value: float) -> str:
    return f"{value:g}"


# Every setting of GenerationSettings, under its own name. A run in progress is not a setting: a link opens the
# view ready to generate, never mid-run.
VIEW = LabView("generation", [
    Control("model", DEFAULTS.model, one_of(MODEL_CHOICES + (TRAINED_MODEL,))),
    Control("prompt", DEFAULTS.prompt, text(GENERATION_PROMPT_MAX_CHARS)),
    Control("chat", DEFAULTS.chat, flag, show_flag),
    Control("greedy", DEFAULTS.greedy, flag, show_flag),
    Control("temperature", DEFAULTS.temperature, number(*_range(TEMPERATURE)), _short),
    Control("top_k", DEFAULTS.top_k, whole(*_range(TOP_K))),
    Control("top_p", DEFAULTS.top_p, number(*_range(TOP_P)), _short),
    Control("min_p", DEFAULTS.min_p, number(*_range(MIN_P)), _short),
    Control("repetition_penalty", DEFAULTS.repetition_penalty, number(*_range(REPETITION)), _short),
    Control("max_new_tokens", DEFAULTS.max_new_tokens, whole(*_range(NEW_TOKENS))),
    Control("seed", DEFAULTS.seed, whole(*_range(SEED))),
    Control("use_cache", DEFAULTS.use_cache, flag, show_flag),
])


def labels(key: Callable[[object], str], **params) -> Callable[[object], str]:
    """A widget's format_func in this session's language. The language is read now, in the script run: Streamlit
    may format an option again elsewhere (AppTest does, in the test's thread), where the session is out of reach."""
    chosen = lang()
    return lambda value: t(chosen, key(value), **params)


def model_labels() -> Callable[[str], str]:
    """The models as the selector names them: SmolLM2 with the release it really runs from, a tiny one as
    untrained."""
    chosen, quant = lang(), quantization_type()
    return lambda name: (t(chosen, "generation.model_label.smollm2", quant=quant) if name == REAL_MODEL
                         else t(chosen, "training.mine.model_label") if name == TRAINED_MODEL
                         else t(chosen, "generation.model_label.tiny", name=name))


def quantization_type() -> str:
    """The type of SmolLM2's layer matrices in the file the app reads (Q4_1), from the file itself."""
    weights = smollm2_weights()
    return "/".join(k for k in weights.types if k not in ("F32", "F16", weights.embedding_type))


def smollm2_note() -> str:
    """What SmolLM2's numbers are computed from, with the numbers read from the weights file."""
    weights = smollm2_weights()
    kind = quantization_type()
    return tr("generation.smollm2_note", file=weights.file, n_matrices=weights.types.get(kind, 0), quant=kind,
              bits=weights.bits.get(kind, 0.0), embedding=weights.embedding_type,
              embedding_bits=weights.bits[weights.embedding_type], n_norms=weights.types.get("F32", 0))


def decoding_controls(model: str, prompt: str, chat: bool) -> GenerationSettings:
    """The decoding widgets, one under the other in the current container (the page's sidebar), with the model
    and prompt chosen on the page, as the lab's settings; checking them is the lab's job
    (explorer.labs.generation.run)."""
    greedy = st.radio(tr("generation.decoding"), [False, True], horizontal=True, key=VIEW.key("greedy"),
                      format_func=labels(lambda v: "generation.greedy" if v else "generation.sampling"),
                      help=tr("generation.decoding_help"))
    temperature = st.slider(tr("generation.temperature"), **TEMPERATURE, key=VIEW.key("temperature"),
                            disabled=greedy)
    top_k = st.slider(tr("generation.top_k"), **TOP_K, key=VIEW.key("top_k"), disabled=greedy)
    top_p = st.slider("top-p", **TOP_P, key=VIEW.key("top_p"), disabled=greedy)
    min_p = st.slider("min-p", **MIN_P, key=VIEW.key("min_p"), disabled=greedy)
    repetition = st.slider(tr("generation.repetition_penalty"), **REPETITION, key=VIEW.key("repetition_penalty"))
    max_new = st.slider(tr("generation.max_new_tokens"), **NEW_TOKENS, key=VIEW.key("max_new_tokens"))
    seed = st.number_input(tr("generation.seed"), **SEED, key=VIEW.key("seed"), disabled=greedy,
                           help=tr("generation.seed_help"))
    use_cache = st.toggle(tr("generation.kv_cache"), key=VIEW.key("use_cache"), help=tr("generation.kv_cache_help"))
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
        return tr("generation.no_visible_text")
    return escape_markdown(text).replace("\n", "  \n")


def lab_state() -> LabState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = LabState()
    return st.session_state[STATE_KEY]
