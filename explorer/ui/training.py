"""Streamlit glue of the training lab: its controls (every TrainingSettings field in the link), the session's runs
(each a background explorer.jobs.Job over a Trainer's steps), the finished runs kept for comparison, and "my
trained model", which the generation and internals labs of the same session can pick.

A training belongs to one session and lives in its st.session_state only. The page never computes a step: it
starts the job and reads its state (a fragment rereads it every second while the job is alive). A closed tab
stops its training: Streamlit releases the session's session-scoped resources when the tab disconnects, which
detaches the job (explorer.jobs: it stops unless the tab reconnects within ``RECONNECT_GRACE_S``), and the job
also stops when the session's state is collected.
"""
from __future__ import annotations

import dataclasses
import math
import os
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from .. import priority
from ..config import ACTIVATIONS, NORM_POSITIONS, NORMS, POSITIONALS, kv_head_choices
from ..corpora import CORPORA, load_corpus, split
from ..i18n import t
from ..jobs import Job, stop_when_collected
from ..models.pretrained import MODEL_NAMES
from ..labs.generation import TRAINED_MODEL
from ..labs.outcome import Outcome
from ..labs.training import (MAX_MERGES, MAX_STEPS, MAX_TEXT_CHARS, SEED_MAX, SOURCES, TOKENIZERS, BatchView,
                             TrainedModel, Trainer, TrainingSettings, TrainStep, load_trained, prepare, save_trained)
from .i18n import lang, tr
from .url_state import Control, LabView, number, one_of, text, whole

STATE_KEY = "training_lab"
TRAINED_KEY = "training.my_model"  # session_state: the TrainedModel the other labs may pick
EXAMPLE_KEY = "training.my_model_text"  # session_state: a text in its language, for the internals lab to read
EXAMPLE_LINES = 2  # a poem's title and author, or a sonnet's first two lines: a few dozen tokens
TRAINED = TRAINED_MODEL  # its name in the other labs' model choices (and in their links)


def _grace_s() -> float:
    """How long a disconnected tab's training waits for the tab to come back: ``EXPLORER_TRAINING_GRACE_S``, else a
    minute (a browser reconnects after a Wi-Fi blip within seconds; a closed tab never does)."""
    try:
        return max(0.0, float(os.environ.get("EXPLORER_TRAINING_GRACE_S", "60")))
    except ValueError:
        return 60.0  # a malformed setting must not take the server down


RECONNECT_GRACE_S = _grace_s()
REFRESH_S = 2.0  # how often the live view rereads a running job: 40 students' live views stay a fraction of a core
KEPT_RUNS = 6  # finished runs a session keeps for comparison (their curves only; a few hundred KB at most)
KEPT_CHECKPOINTS = 64  # checkpoints (sample + attention) a run keeps: at most 32 MB for the largest model

DEFAULTS = TrainingSettings()
D_MODELS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HEADS = (1, 2, 4, 8, 16)
CONTEXTS = (8, 16, 32, 48, 64, 96, 128, 192, 256)
BATCHES = (1, 2, 4, 8, 16, 32, 64)
LRS = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 6e-3, 1e-2, 3e-2, 1e-1)
BETA2S = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
EPSS = (1e-10, 1e-8, 1e-6, 1e-4)
N_LAYER = dict(min_value=1, max_value=8)
MERGES = dict(min_value=0, max_value=MAX_MERGES, step=50)
STEPS = dict(min_value=1, max_value=MAX_STEPS, step=50)
BETA1 = dict(min_value=0.0, max_value=0.99, step=0.01)
WEIGHT_DECAY = dict(min_value=0.0, max_value=1.0, step=0.01)
CLIP = dict(min_value=0.0, max_value=10.0, step=0.1)
VAL_FRACTION = dict(min_value=0.05, max_value=0.5, step=0.05)
MIN_LR = dict(min_value=0.0, max_value=1.0, step=0.05)
EVERY = dict(min_value=1, max_value=MAX_STEPS)


def _range(widget: dict) -> tuple:
    return widget["min_value"], widget["max_value"]


def _short(value: float) -> str:
    return f"{value:g}"


def listed(choices: tuple[float, ...]) -> Callable[[str], float]:
    """A link's number that must be one of a select-slider's values (0.0030 and 3e-3 both read as 0.003)."""
    def parse(value: str) -> float:
        x = float(value)
        for c in choices:
            if math.isclose(x, c, rel_tol=1e-9):
                return c
        raise ValueError(value)
    return parse


VIEW = LabView("training", [
    Control("corpus", DEFAULTS.corpus, one_of(SOURCES)),
    Control("text", DEFAULTS.text, text(MAX_TEXT_CHARS)),
    Control("val_fraction", DEFAULTS.val_fraction, number(*_range(VAL_FRACTION)), _short),
    Control("tokenizer", DEFAULTS.tokenizer, one_of(TOKENIZERS)),
    Control("merges", DEFAULTS.merges, whole(*_range(MERGES))),
    Control("n_layer", DEFAULTS.n_layer, whole(*_range(N_LAYER))),
    Control("d_model", DEFAULTS.d_model, one_of(D_MODELS)),
    Control("n_head", DEFAULTS.n_head, one_of(HEADS)),
    Control("n_kv_head", DEFAULTS.n_kv_head, one_of(HEADS)),
    Control("norm", DEFAULTS.norm, one_of(NORMS)),
    Control("norm_position", DEFAULTS.norm_position, one_of(NORM_POSITIONS)),
    Control("activation", DEFAULTS.activation, one_of(ACTIVATIONS)),
    Control("positional", DEFAULTS.positional, one_of(POSITIONALS)),
    Control("context", DEFAULTS.context, one_of(CONTEXTS)),
    Control("batch_size", DEFAULTS.batch_size, one_of(BATCHES)),
    Control("steps", DEFAULTS.steps, whole(*_range(STEPS))),
    Control("lr", DEFAULTS.lr, listed(LRS), _short),
    Control("warmup", DEFAULTS.warmup, whole(0, MAX_STEPS)),
    Control("min_lr_ratio", DEFAULTS.min_lr_ratio, number(*_range(MIN_LR)), _short),
    Control("beta1", DEFAULTS.beta1, number(*_range(BETA1)), _short),
    Control("beta2", DEFAULTS.beta2, listed(BETA2S), _short),
    Control("eps", DEFAULTS.eps, listed(EPSS), _short),
    Control("weight_decay", DEFAULTS.weight_decay, number(*_range(WEIGHT_DECAY)), _short),
    Control("clip", DEFAULTS.clip, number(*_range(CLIP)), _short),
    Control("seed", DEFAULTS.seed, whole(0, SEED_MAX)),
    Control("eval_every", DEFAULTS.eval_every, whole(*_range(EVERY))),
    Control("sample_every", DEFAULTS.sample_every, whole(*_range(EVERY))),
    Control("attn_layer", DEFAULTS.attn_layer, whole(0, N_LAYER["max_value"] - 1)),
    Control("attn_head", DEFAULTS.attn_head, whole(0, max(HEADS) - 1)),
])


def labels(prefix: str) -> Callable[[Any], str]:
    """A widget's format_func in this session's language, read now (AppTest formats options in its own thread)."""
    chosen = lang()
    return lambda value: t(chosen, f"{prefix}.{value}")


def settings_controls() -> TrainingSettings:
    """Every control, in the sidebar, grouped as the course teaches them: data, model, optimiser, the run."""
    k = VIEW.key
    with st.sidebar:
        with st.expander(tr("training.sidebar.data"), expanded=True):
            corpus = st.radio(tr("training.corpus"), SOURCES, key=k("corpus"),
                              format_func=labels("training.corpus_name"), horizontal=True)
            own = st.text_area(tr("training.own_text"), key=k("text"), max_chars=MAX_TEXT_CHARS, height=100,
                               help=tr("training.own_text_help")) if corpus == "custom" else st.session_state[k("text")]
            val_fraction = st.slider(tr("training.val_fraction"), **VAL_FRACTION, key=k("val_fraction"),
                                     help=tr("training.val_fraction_help"))
            tokenizer = st.radio(tr("training.tokenizer"), TOKENIZERS, key=k("tokenizer"), horizontal=True,
                                 format_func=labels("training.tokenizer_name"))
            merges = st.slider(tr("training.merges"), **MERGES, key=k("merges"), disabled=tokenizer != "bpe",
                               help=tr("training.merges_help"))
        with st.expander(tr("training.sidebar.model"), expanded=True):
            n_layer = st.slider(tr("training.n_layer"), **N_LAYER, key=k("n_layer"))
            d_model = st.select_slider("d_model", D_MODELS, key=k("d_model"))
            heads = [h for h in HEADS if d_model % h == 0]
            VIEW.keep_valid("n_head", lambda h: h in heads, heads[-1] if DEFAULTS.n_head not in heads
                            else DEFAULTS.n_head)
            n_head = st.select_slider("n_head", heads, key=k("n_head")) if len(heads) > 1 else heads[0]
            kv = kv_head_choices(n_head)[::-1]
            VIEW.keep_valid("n_kv_head", lambda h: h in kv, n_head)
            n_kv_head = st.select_slider("n_kv_head", kv, key=k("n_kv_head"), help=tr("training.n_kv_head_help")) \
                if len(kv) > 1 else kv[0]
            norm = st.radio(tr("training.norm"), NORMS, key=k("norm"), horizontal=True,
                            format_func=labels("training.norm_name"))
            norm_position = st.radio(tr("training.norm_position"), NORM_POSITIONS, key=k("norm_position"),
                                     horizontal=True, format_func=labels("training.norm_position_name"),
                                     help=tr("training.norm_position_help"))
            activation = st.selectbox(tr("training.activation"), ACTIVATIONS, key=k("activation"))
            positional = st.selectbox(tr("training.positional"), POSITIONALS, key=k("positional"),
                                      format_func=labels("training.positional_name"))
            context = st.select_slider(tr("training.context"), CONTEXTS, key=k("context"),
                                       help=tr("training.context_help"))
        with st.expander(tr("training.sidebar.optimiser")):
            lr = st.select_slider(tr("training.lr"), LRS, key=k("lr"), format_func=_short)
            steps = int(st.number_input(tr("training.steps"), **STEPS, key=k("steps")))
            VIEW.keep_valid("warmup", lambda w: 0 <= w <= steps, min(DEFAULTS.warmup, steps))
            warmup = st.slider(tr("training.warmup"), 0, steps, key=k("warmup"), help=tr("training.warmup_help")) \
                if steps > 1 else 0
            min_lr_ratio = st.slider(tr("training.min_lr_ratio"), **MIN_LR, key=k("min_lr_ratio"),
                                     help=tr("training.min_lr_ratio_help"))
            beta1 = st.slider("β1", **BETA1, key=k("beta1"), help=tr("training.beta1_help"))
            beta2 = st.select_slider("β2", BETA2S, key=k("beta2"), help=tr("training.beta2_help"))
            eps = st.select_slider("ε", EPSS, key=k("eps"), format_func=lambda v: f"{v:.0e}")
            weight_decay = st.slider(tr("training.weight_decay"), **WEIGHT_DECAY, key=k("weight_decay"),
                                     help=tr("training.weight_decay_help"))
            clip = st.slider(tr("training.clip"), **CLIP, key=k("clip"), help=tr("training.clip_help"))
        with st.expander(tr("training.sidebar.run")):
            batch_size = st.select_slider(tr("training.batch_size"), BATCHES, key=k("batch_size"))
            eval_every = int(st.number_input(tr("training.eval_every"), **EVERY, key=k("eval_every")))
            sample_every = int(st.number_input(tr("training.sample_every"), **EVERY, key=k("sample_every")))
            seed = int(st.number_input(tr("training.seed"), 0, SEED_MAX, key=k("seed")))
            VIEW.keep_valid("attn_layer", lambda v: 0 <= v < n_layer, 0)
            attn_layer = st.slider(tr("training.attn_layer"), 0, n_layer - 1, key=k("attn_layer"),
                                   format="%d", help=tr("training.attn_help")) if n_layer > 1 else 0
            VIEW.keep_valid("attn_head", lambda v: 0 <= v < n_head, 0)
            attn_head = st.slider(tr("training.attn_head"), 0, n_head - 1, key=k("attn_head"),
                                  help=tr("training.attn_help")) if n_head > 1 else 0
    return TrainingSettings(
        corpus=corpus, text=own if corpus == "custom" else DEFAULTS.text, tokenizer=tokenizer, merges=merges,
        n_layer=n_layer, d_model=d_model, n_head=n_head, n_kv_head=n_kv_head, norm=norm, norm_position=norm_position,
        activation=activation, positional=positional, context=context, batch_size=batch_size, steps=steps, lr=lr,
        warmup=warmup, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, clip=clip, seed=seed,
        eval_every=eval_every, sample_every=sample_every, val_fraction=val_fraction, min_lr_ratio=min_lr_ratio,
        attn_layer=attn_layer, attn_head=attn_head)


# ---- the session's runs --------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One press of Train: the settings it used, its Trainer, and the job stepping through it."""

    number: int
    settings: TrainingSettings
    trainer: Trainer
    job: Job[TrainStep]
    vocab_size: int
    n_params: int
    collected: bool = False  # its end was seen: the trained model was kept, the curve joined the comparison

    def label(self, lg: str) -> str:
        return run_label(self.number, self.settings, lg)


@dataclass
class FinishedRun:
    """What the comparison keeps of a run: its settings and its steps (no model)."""

    number: int
    settings: TrainingSettings
    steps: list[TrainStep]
    end: str  # the job's end: done, stopped or failed

    def label(self, lg: str) -> str:
        return run_label(self.number, self.settings, lg)


def run_label(number: int, s: TrainingSettings, lg: str) -> str:
    """A run named by what the comparisons of the course vary: norm and its position, lr, warm-up."""
    return t(lg, "training.run_label", n=number, position=t(lg, f"training.norm_position_short.{s.norm_position}"),
             norm=t(lg, f"training.norm_name.{s.norm}"), lr=_short(s.lr), warmup=s.warmup)


@dataclass
class TrainingState:
    preview: Outcome | None = None  # prepare(settings) for the controls as they are: what a Train press trains
    preview_for: TrainingSettings | None = None  # the settings it was asked for (the outcome may have fallen back)
    current: Run | None = None
    finished: list[FinishedRun] = field(default_factory=list)
    runs: int = 0
    upload_id: str | None = None  # the uploaded file already read (a rerun must not read it again)
    batch_cache: dict = field(default_factory=dict)  # (trainer id, its step, lang) -> BatchView


class SessionWatch:
    """A session-scoped resource: Streamlit releases it when the session's tab disconnects (``on_release``)."""

    def __init__(self) -> None:
        self.jobs: weakref.WeakSet[Job] = weakref.WeakSet()  # a finished run's job (and its model) may go

    def track(self, job: Job) -> None:
        self.jobs.add(job)
        job.attach()


def _tab_closed(watch: SessionWatch) -> None:
    for job in list(watch.jobs):
        job.detach(RECONNECT_GRACE_S)


@st.cache_resource(scope="session", on_release=_tab_closed, show_spinner=False)
def session_watch() -> SessionWatch:
    return SessionWatch()


def lab_state() -> TrainingState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = TrainingState()
    state = st.session_state[STATE_KEY]
    if state.current is not None and not state.current.job.finished:
        session_watch().track(state.current.job)  # this tab is here: a detach from a blip is undone
    return state


def preview(state: TrainingState, settings: TrainingSettings) -> Outcome:
    """The Trainer the controls describe, built once per change of the controls (a model at its initial weights)."""
    if state.preview is None or state.preview_for != settings:
        with priority.interactive():
            state.preview = prepare(settings)
        state.preview_for = settings
    return state.preview


def start_training(state: TrainingState, outcome: Outcome) -> Run:
    """A new run from the previewed Trainer; the previous run, if still going, stops."""
    stop_current(state)
    trainer: Trainer = outcome.result
    state.runs += 1
    job = Job(trainer.steps, total=trainer.settings.steps + 1, name="training", pinned=_checkpoint, light=_numbers,
              keep_pinned=KEPT_CHECKPOINTS)
    run = Run(number=state.runs, settings=trainer.settings, trainer=trainer, job=job,
              vocab_size=trainer.config.vocab_size, n_params=trainer.n_params)
    state.current = run
    state.preview = None  # this Trainer trains now; the next preview is a fresh one
    job.start()
    stop_when_collected(state, job)
    session_watch().track(job)
    return run


def _checkpoint(step: TrainStep) -> bool:
    return step.sample is not None or step.attention is not None


def _numbers(step: TrainStep) -> TrainStep:
    """A step without its sample and attention maps (every layer's every head at a checkpoint: up to 0.5 MB), as the
    curves keep it; the checkpoints keep them whole."""
    return dataclasses.replace(step, sample=None, attention=None) if _checkpoint(step) else step


def stop_current(state: TrainingState) -> None:
    if state.current is not None and not state.current.job.finished:
        state.current.job.stop()
        state.current.job.join(timeout=5.0)
    collect(state)


def collect(state: TrainingState) -> bool:
    """When the current run has ended: keep its curve for the comparison and its model as "my trained model".
    True when this call did it."""
    run = state.current
    if run is None or run.collected or not run.job.finished:
        return False
    run.collected = True
    steps = run.job.history()
    if steps:
        state.finished.append(FinishedRun(run.number, run.settings, steps, run.job.state))
        del state.finished[:-KEPT_RUNS]
    if run.trainer.next_step > 1:  # at least one update: a model worth picking elsewhere
        st.session_state[TRAINED_KEY] = run.trainer.trained_model(name=TRAINED)
        st.session_state[EXAMPLE_KEY] = _first_lines(run.trainer.split[1])
    return True


def _first_lines(text: str) -> str:
    return "\n".join(text.strip().splitlines()[:EXAMPLE_LINES])


def my_trained_model() -> TrainedModel | None:
    """This session's trained (or uploaded) model, for the generation and internals labs."""
    return st.session_state.get(TRAINED_KEY)


def internals_models() -> tuple[str, ...]:
    """The internals lab's models, with this session's trained model once it has one."""
    return MODEL_NAMES + ((TRAINED,) if my_trained_model() is not None else ())


def trained_example_text() -> str:
    """A text for the internals lab to read with "my trained model": the start of its validation text."""
    return st.session_state.get(EXAMPLE_KEY) or _first_lines(load_corpus(CORPORA[0]))


def trained_prompt() -> str:
    """A prompt for "my trained model" in the generation lab: the first line of its example (a poem's title)."""
    return trained_example_text().split("\n", 1)[0]


def upload_model(data: bytes) -> TrainedModel:
    """An uploaded zip as "my trained model"; ValueError (with a sentence) leaves the current one in place. Its
    example text is the first corpus whose characters it knows (a BPE knows every text: the first corpus)."""
    model = load_trained(data, name=TRAINED)
    inner = model.tokenizer.inner
    samples = [_first_lines(split(load_corpus(name), DEFAULTS.val_fraction)[1]) for name in CORPORA]
    known = [s for s in samples if not hasattr(inner, "unknown") or not inner.unknown(s)]
    st.session_state[TRAINED_KEY] = model
    st.session_state[EXAMPLE_KEY] = (known or samples)[0]
    return model


def download_bytes() -> bytes:
    model = my_trained_model()
    return save_trained(model) if model is not None else b""


def cached_batch_view(state: TrainingState, trainer: Trainer, lg: str) -> BatchView:
    """Batch 0 under the trainer's model as it is now (one forward pass, computed once per step and language)."""
    key = (id(trainer), trainer.next_step, lg)
    if key not in state.batch_cache:
        with priority.interactive():
            state.batch_cache = {key: trainer.batch_view(lg)}
    return state.batch_cache[key]
