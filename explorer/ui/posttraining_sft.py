"""Streamlit glue of the post-training lab's SFT tab: the conversation (a pair of the instruction set, one or two
rounds) and its token-by-token loss under SmolLM2, then a short full fine-tune of a copy of SmolLM2 in the
background (explorer.jobs, in the training lab's queue) with its loss curve and the held-out answers before and after.

The run belongs to the session: a closed tab stops it (the training lab's session watch detaches it), and so does
the session's state being collected."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from .. import priority
from ..jobs import FAILED, PAUSED, WAITING, Job, stop_when_collected
from ..labs.outcome import Outcome
from ..labs.posttraining_sft import (BATCHES, LRS, MAX_NEW_TOKENS, STEPS, TURNS, SftSettings, SftView, run_sft,
                                     trainer_for)
from ..models.quantization import smollm2_weights
from ..sft import SftStep, SftTrainer, instruction_set
from ..viz.posttraining import run_loss_figure
from ..viz.posttraining_sft import token_chips_html, token_loss_figure
from .common import chart, report_invalid
from .i18n import lang, say, tr
from .models import get_model, shared_model
from .training import REFRESH_S, session_watch
from .url_state import Control, LabView, number, one_of, show_problems, whole

MODEL = "smollm2-135m"
DEFAULT = SftSettings()
STATE_KEY = "posttraining_sft.state"


def _lr(text: str) -> float:
    value = number(min(LRS), max(LRS))(text)
    if value not in LRS:
        raise ValueError(text)
    return value


VIEW = LabView("posttraining_sft", [
    Control("example", DEFAULT.example, whole(0, len(instruction_set().train) - 1)),
    Control("turns", DEFAULT.turns, one_of(TURNS)),
    Control("steps", DEFAULT.steps, one_of(STEPS)),
    Control("batch", DEFAULT.batch, one_of(BATCHES)),
    Control("lr", DEFAULT.lr, _lr, lambda v: f"{v:g}"),
])


@dataclass
class SftRun:
    number: int
    settings: SftSettings
    trainer: SftTrainer
    job: Job


@dataclass
class SftState:
    current: SftRun | None = None
    runs: int = 0


# One outcome per pair and number of rounds (56 x 2 at most), a few KB each: the whole set stays under a few MB.
@st.cache_data(max_entries=128, show_spinner=False)
def conversation_view(example: int, turns: int) -> Outcome[SftSettings, SftView]:
    with priority.interactive():  # a student waits: background trainings and generation step aside
        return run_sft(dataclasses.replace(DEFAULT, example=example, turns=turns), shared_model(MODEL))


def state() -> SftState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = SftState()
    current = st.session_state[STATE_KEY]
    if current.current is not None and not current.current.job.finished:
        session_watch().track(current.current.job)  # this tab is here: a detach from a Wi-Fi blip is undone
    return current


def start(run_state: SftState, settings: SftSettings) -> SftRun:
    stop(run_state)
    trainer = trainer_for(settings, get_model(MODEL))
    run_state.runs += 1
    job = Job(trainer.steps, total=trainer.total, name="sft")
    run = SftRun(run_state.runs, settings, trainer, job)
    run_state.current = run
    job.start()
    stop_when_collected(run_state, job)
    session_watch().track(job)
    return run


def stop(run_state: SftState) -> None:
    run = run_state.current
    if run is not None and not run.job.finished:
        run.job.stop()


def _example_label(i: int) -> str:
    e = instruction_set().train[i]
    return tr("posttraining_sft.example_label", n=i + 1, prompt=e.prompt)


def conversation_controls() -> tuple[int, int]:
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    with left:
        example = st.selectbox(tr("posttraining_sft.example"), range(len(instruction_set().train)),
                               format_func=_example_label, key=VIEW.key("example"))
    with right:
        turns = st.segmented_control(tr("posttraining_sft.turns"), TURNS, required=True, key=VIEW.key("turns"),
                                     format_func=lambda n: tr("posttraining_sft.turns_n", n=n))
    return example, turns


def conversation_section(example: int, turns: int, lg: str) -> None:
    get_model(MODEL)  # the first student of a fresh server sees a spinner while SmolLM2 loads
    shown = conversation_view(example, turns)
    if shown.error:
        report_invalid(shown.error)
    if shown.result is None:
        return
    result: SftView = shown.result
    view = result.view
    chart(token_loss_figure(view, result.labels, lang=lg), "sft_token_loss")
    st.caption(tr("posttraining_sft.loss_caption", masked=view.masked, n=view.n_counted, unmasked=view.unmasked,
                  total=view.n_predicted))
    if shown.fallback:
        st.caption(say(shown.fallback))
    with st.expander(tr("posttraining_sft.tokens_header"), expanded=False):
        st.html(token_chips_html(result.labels, view.tokens.in_loss, lang=lg))
        st.markdown(tr("posttraining_sft.explain"))
        st.latex(r"\mathcal{L}_{SFT} = -\frac{1}{\sum_t m_t}\sum_t m_t \log p_\theta(x_t \mid x_{<t}),"
                 r"\qquad m_t = 1 \text{ iff } x_t \text{ is in an assistant answer}")
        st.caption(say(smollm2_weights().note))


def train_controls() -> tuple[int, int, float]:
    c1, c2, c3 = st.columns(3)
    steps = c1.slider(tr("posttraining_sft.steps"), min(STEPS), max(STEPS), step=STEPS[1] - STEPS[0],
                      key=VIEW.key("steps"))
    batch = c2.select_slider(tr("posttraining_sft.batch"), BATCHES, key=VIEW.key("batch"))
    lr = c3.select_slider(tr("posttraining_sft.lr"), LRS, key=VIEW.key("lr"), format_func=lambda v: f"{v:g}")
    return steps, batch, lr


def _answers_table(history: list[SftStep]) -> pd.DataFrame:
    """The held-out prompts and their answers so far: a run fills 'before', then 'after', one prompt at a time."""
    data = instruction_set().heldout
    said = {(s.phase, s.prompt): s.answer for s in history if s.answer is not None}
    return pd.DataFrame({
        tr("posttraining_sft.col.prompt"): [e.prompt for e in data],
        tr("posttraining_sft.col.before"): [said.get(("before", i), "") for i in range(len(data))],
        tr("posttraining_sft.col.after"): [said.get(("after", i), "") for i in range(len(data))],
        tr("posttraining_sft.col.reference"): [e.answer for e in data],
    })


def live(run_state: SftState, lg: str) -> None:
    """The run as it is now, read from its job (the page never computes a step)."""
    run = run_state.current
    if run is None:
        st.caption(tr("posttraining_sft.press_train"))
        return
    job = run.job
    history = job.history()
    if job.finished and not st.session_state.get(f"posttraining_sft.redrawn_{run.number}"):
        st.session_state[f"posttraining_sft.redrawn_{run.number}"] = True
        st.rerun()  # the whole tab once: the live fragment stops refreshing
    now = job.state
    if now == WAITING:
        st.info(tr("posttraining_sft.status.queue", place=job.place(), running=job.running_jobs()))
    elif now == FAILED:
        report_invalid(job.error or "")
    updates = [s for s in history if s.phase == "train"]
    after = [s for s in history if s.phase == "after"]
    phase = "after" if after else "train" if updates else "before"
    st.progress(job.fraction, text=tr(f"posttraining_sft.status.{now}", n=run.number, step=len(updates),
                                      total=run.settings.steps, phase=tr(f"posttraining_sft.phase.{phase}")))
    row = st.container(horizontal=True, gap="small")
    if now == PAUSED:
        row.button(tr("posttraining_sft.resume"), key="posttraining_sft.resume", on_click=job.resume,
                   icon=":material/play_arrow:")
    else:
        row.button(tr("posttraining_sft.pause"), key="posttraining_sft.pause", on_click=job.pause,
                   icon=":material/pause:", disabled=job.finished)
    row.button(tr("posttraining_sft.stop"), key="posttraining_sft.stop", on_click=job.stop, icon=":material/stop:",
               disabled=job.finished)
    chart(run_loss_figure([s.step for s in updates], [s.loss for s in updates], lang=lg,
                          title=tr("posttraining_sft.curve_title", n=run.number, lr=run.settings.lr,
                                   batch=run.settings.batch),
                          total_steps=run.settings.steps), "sft_loss")
    if updates:
        last = updates[-1]
        st.caption(tr("posttraining_sft.step_caption", step=last.step, loss=last.loss, first=updates[0].loss,
                      tokens=last.tokens, lr=last.lr, norm=last.grad_norm, seconds=last.elapsed_s))
    if after:
        st.caption(tr("posttraining_sft.moved", change=100 * after[0].weight_change))
    st.dataframe(_answers_table(history), hide_index=True, width="stretch")
    st.caption(tr("posttraining_sft.answers_caption", n=len(instruction_set().heldout), max_new=MAX_NEW_TOKENS))


def render() -> None:
    show_problems(VIEW.open())
    lg = lang()
    example, turns = conversation_controls()
    conversation_section(example, turns, lg)

    st.subheader(tr("posttraining_sft.train_header"))
    steps, batch, lr = train_controls()
    settings = dataclasses.replace(DEFAULT, example=example, turns=turns, steps=steps, batch=batch, lr=lr)
    VIEW.publish()
    run_state = state()
    go, note = st.columns([1, 3], vertical_alignment="center")
    pressed = go.button(tr("posttraining_sft.train"), type="primary", key="posttraining_sft.go",
                        icon=":material/play_arrow:", width="stretch")
    note.caption(tr("posttraining_sft.train_note", n=len(instruction_set().train), steps=steps, batch=batch,
                    heldout=len(instruction_set().heldout)))
    if pressed:
        start(run_state, settings)
    active = run_state.current is not None and not run_state.current.job.finished
    st.fragment(lambda: live(run_state, lg), run_every=REFRESH_S if active else None)()
