"""Streamlit glue of the post-training lab's ``losses`` tab: the pair and β (in the link), every term of CE, KL and
DPO for that pair, and a short DPO run in the background (explorer.jobs.Job in the class-wide training queue, Pause
and Stop, stopped when the tab closes), whose trained policy the terms are then computed with."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from .. import priority
from ..jobs import FAILED, PAUSED, WAITING, Job, stop_when_collected
from ..labs.outcome import Outcome
from ..labs.posttraining_losses import (BETAS, LRS, MAX_STEPS, TRAINABLE_LAYERS, DPORun, DPOStep, LossesSettings,
                                        LossesView, load_pairs, pair_by_id, pair_ids, run)
from ..models.quantization import smollm2_weights
from ..viz.posttraining_losses import dpo_run_figure, token_terms_figure
from .common import chart, report_invalid, show_outcome
from .i18n import lang, say, tr
from .models import get_model, shared_model
from .training import REFRESH_S, session_watch
from .url_state import Control, LabView, one_of, show_problems, whole

MODEL = "smollm2-135m"
STATE_KEY = "posttraining_losses.state"
DEFAULT = LossesSettings()

VIEW = LabView("posttraining_losses", [
    Control("pair", DEFAULT.pair, one_of(pair_ids())),
    Control("beta", DEFAULT.beta, one_of(BETAS)),
    Control("steps", DEFAULT.steps, whole(1, MAX_STEPS)),
    Control("lr", DEFAULT.lr, one_of(LRS), lambda v: f"{v:g}"),
    Control("trainable_layers", DEFAULT.trainable_layers, one_of(TRAINABLE_LAYERS)),
])


@dataclass
class DPOJob:
    number: int
    settings: LossesSettings
    trainer: DPORun
    job: Job[DPOStep]


@dataclass
class LossesState:
    current: DPOJob | None = None
    runs: int = 0
    views: dict = dataclasses.field(default_factory=dict)  # (run number, pair, β) -> outcome under that run's policy


def state() -> LossesState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = LossesState()
    current = st.session_state[STATE_KEY]
    if current.current is not None and not current.current.job.finished:
        session_watch().track(current.current.job)  # this tab is here: a detach from a Wi-Fi blip is undone
    return current


@st.cache_data(max_entries=256, show_spinner=False)
def reference_view(pair: str, beta: float) -> Outcome[LossesSettings, LossesView]:
    """The terms before any DPO update (π = π_ref), the same for every student: cached for the class."""
    with priority.interactive():
        return run(dataclasses.replace(DEFAULT, pair=pair, beta=beta), shared_model(MODEL))


def trained_view(run_state: LossesState, settings: LossesSettings) -> Outcome[LossesSettings, LossesView]:
    """The terms under this session's finished DPO run's policy (read only once its job has ended: no step is
    writing the weights meanwhile)."""
    done = run_state.current
    key = (done.number, settings.pair, settings.beta)
    if key not in run_state.views:
        with priority.interactive():
            run_state.views = {key: run(settings, shared_model(MODEL), done.trainer.policy, trained=True)}
    return run_state.views[key]


def start(run_state: LossesState, settings: LossesSettings) -> DPOJob:
    stop(run_state)
    trainer = DPORun(get_model(MODEL), settings)
    run_state.runs += 1
    job = Job(trainer.steps, total=settings.steps + 1, name="dpo")  # the measurement before, then each update
    current = DPOJob(run_state.runs, settings, trainer, job)
    run_state.current = current
    run_state.views = {}
    job.start()
    stop_when_collected(run_state, job)
    session_watch().track(job)
    return current


def stop(run_state: LossesState) -> None:
    current = run_state.current
    if current is not None and not current.job.finished:
        current.job.stop()


def _pair_label(pair_id: str) -> str:
    return pair_by_id(pair_id).prompt


def pair_controls() -> tuple[str, float]:
    left, right = st.columns([3, 2])
    pair = left.selectbox(tr("posttraining_losses.pair"), pair_ids(), format_func=_pair_label, key=VIEW.key("pair"))
    beta = right.select_slider("β", BETAS, key=VIEW.key("beta"), help=tr("posttraining_losses.beta_help"))
    return pair, beta


def terms_table(view: LossesView) -> pd.DataFrame:
    rows = ("logp", "logp_ref", "logratio", "reward")
    c, r = view.chosen, view.rejected
    chosen = (c.seq_logp, c.seq_logp_ref, view.chosen_logratio, view.chosen_reward)
    rejected = (r.seq_logp, r.seq_logp_ref, view.rejected_logratio, view.rejected_reward)
    return pd.DataFrame({
        tr("posttraining_losses.col.term"): [tr(f"posttraining_losses.row.{k}") for k in rows],
        tr("posttraining_losses.col.chosen", answer=view.pair.chosen): [f"{v:.3f}" for v in chosen],
        tr("posttraining_losses.col.rejected", answer=view.pair.rejected): [f"{v:.3f}" for v in rejected],
    })


def terms_section(outcome: Outcome[LossesSettings, LossesView], lg: str, run_number: int | None) -> None:
    show_outcome(outcome)
    view = outcome.result
    if view is None:
        return
    chart(token_terms_figure(view, lg), "posttraining_losses_tokens")
    st.caption(tr("posttraining_losses.tokens_caption", kl=float(view.chosen.kl_exact.sum()),
                  k1=float(view.chosen.kl_k1.sum()), k3=float(view.chosen.kl_k3.sum())))
    st.latex(r"\mathcal{L}_\mathrm{DPO} = -\log\sigma\Big(\beta\big[(\log\pi(y_w)-\log\pi_\mathrm{ref}(y_w))"
             r"-(\log\pi(y_l)-\log\pi_\mathrm{ref}(y_l))\big]\Big)")
    st.dataframe(terms_table(view), hide_index=True, width="stretch")
    st.caption(tr("posttraining_losses.dpo_caption", beta=view.beta, margin=view.margin, loss=view.loss))
    if run_number is None:
        st.caption(tr("posttraining_losses.untrained_note"))
    else:
        st.caption(tr("posttraining_losses.trained_note", n=run_number))


def run_controls() -> tuple[int, float, int]:
    a, b, c = st.columns(3)
    steps = int(a.number_input(tr("posttraining_losses.steps"), 1, MAX_STEPS, key=VIEW.key("steps")))
    lr = b.select_slider(tr("posttraining_losses.lr"), LRS, key=VIEW.key("lr"), format_func=lambda v: f"{v:g}")
    layers = c.select_slider(tr("posttraining_losses.trainable_layers"), TRAINABLE_LAYERS,
                             key=VIEW.key("trainable_layers"), help=tr("posttraining_losses.trainable_help"))
    return steps, lr, layers


def live(run_state: LossesState, lg: str) -> None:
    """The run as it is now, read from its job (the page never computes a step)."""
    current = run_state.current
    if current is None:
        st.caption(tr("posttraining_losses.press_train"))
        return
    job = current.job
    flag = f"posttraining_losses.redrawn_{current.number}"
    if job.finished and not st.session_state.get(flag):
        st.session_state[flag] = True
        st.rerun()  # the whole tab once: the terms above are recomputed with the trained policy
    now = job.state
    if now == WAITING:
        st.info(tr("posttraining_losses.status.queue", place=job.place(), running=job.running_jobs()))
    elif now == FAILED:
        report_invalid(job.error or "")
    history = job.history()
    updates = max(0, len(history) - 1)
    st.progress(job.fraction, text=tr(f"posttraining_losses.status.{now}", n=current.number, step=updates,
                                      total=current.settings.steps))
    row = st.container(horizontal=True, gap="small")
    if now == PAUSED:
        row.button(tr("posttraining_losses.resume"), key="posttraining_losses.resume", on_click=job.resume,
                   icon=":material/play_arrow:")
    else:
        row.button(tr("posttraining_losses.pause"), key="posttraining_losses.pause", on_click=job.pause,
                   icon=":material/pause:", disabled=job.finished)
    row.button(tr("posttraining_losses.stop"), key="posttraining_losses.stop", on_click=job.stop,
               icon=":material/stop:", disabled=job.finished)
    s = current.settings
    chart(dpo_run_figure(history, s.steps, lg, tr("posttraining_losses.run_title", n=current.number, beta=s.beta,
                                                   lr=f"{s.lr:g}", layers=s.trainable_layers)),
          "posttraining_losses_dpo")
    if history:
        last = history[-1]
        st.caption(tr("posttraining_losses.run_caption", step=last.step, margin=last.margin, kl=last.kl,
                      loss=last.loss, accuracy=100 * last.accuracy, pairs=len(current.trainer.pairs())))


def render() -> None:
    show_problems(VIEW.open())
    lg = lang()
    pair, beta = pair_controls()
    run_state = state()
    current = run_state.current
    trained = current is not None and current.job.finished and current.trainer.updates > 0
    with st.spinner(tr("posttraining_losses.computing")):
        get_model(MODEL)
        settings = dataclasses.replace(DEFAULT, pair=pair, beta=beta)
        if trained:
            outcome = trained_view(run_state, dataclasses.replace(
                settings, trainable_layers=current.settings.trainable_layers))
        else:
            outcome = reference_view(pair, beta)
    terms_section(outcome, lg, current.number if trained else None)

    st.subheader(tr("posttraining_losses.run_header"))
    steps, lr, layers = run_controls()
    VIEW.publish()
    go, note = st.columns([1, 3], vertical_alignment="center")
    pressed = go.button(tr("posttraining_losses.train"), type="primary", key="posttraining_losses.go",
                        icon=":material/play_arrow:", width="stretch")
    lang_pairs = sum(1 for p in load_pairs() if p.lang == pair_by_id(pair).lang)
    note.caption(tr("posttraining_losses.train_note", pairs=lang_pairs, steps=steps, layers=layers,
                    n_layer=shared_model(MODEL).config.n_layer))
    if pressed:
        start(run_state, dataclasses.replace(settings, steps=steps, lr=lr, trainable_layers=layers))
    active = run_state.current is not None and not run_state.current.job.finished
    st.fragment(lambda: live(run_state, lg), run_every=REFRESH_S if active else None)()
    st.caption(say(smollm2_weights().note))
