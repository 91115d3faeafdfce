"""Streamlit glue of the post-training lab's LoRA tab: its controls (each in the link under its settings' name), the
counts (cached arithmetic), and the session's LoRA fine-tune, a background explorer.jobs.Job in the class-wide
training queue, stopped with the tab (explorer.ui.training's session watch) and when the session goes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd
import streamlit as st

from ..jobs import FAILED, PAUSED, WAITING, Job, stop_when_collected
from ..labs.outcome import Outcome
from ..labs.posttraining_lora import (DROPOUTS, LRS, MAX_ALPHA, MAX_RANK, MAX_STEPS, MODELS, PRESETS, SEED_MAX,
                                      LoraCounts, LoraSettings, LoraTrainer, adapter_share, base_param_count,
                                      expected_optimizer_bytes, lora_trainer, run_lora)
from ..lora import TARGETS
from ..sizing import GB, human_bytes
from ..viz.posttraining_lora import answers_table, count_table, loss_figure, memory_figure, trainable_figure
from .common import chart, report_invalid, show_outcome
from .i18n import lang, tr
from .models import get_model
from .training import REFRESH_S, my_trained_model, session_watch
from .url_state import Control, LabView, one_of, show_problems, whole

DEFAULT = LoraSettings()
STATE_KEY = "posttraining_lora.run"
ALPHA = dict(min_value=1, max_value=MAX_ALPHA, step=1)


def parse_targets(text: str) -> list[str]:
    """'q,v' -> ['q', 'v'] (in TARGETS order); ValueError for an unknown name, a repeat or none."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or len(set(names)) != len(names) or any(n not in TARGETS for n in names):
        raise ValueError(text)
    return [n for n in TARGETS if n in names]


def show_targets(value) -> str:
    return ",".join(value)


def listed(choices) -> Callable[[str], float]:
    """A link's number that must be one of a select-slider's values (0.0020 and 2e-3 both read as 0.002)."""
    def parse(text: str) -> float:
        x = float(text)
        for c in choices:
            if abs(x - c) <= 1e-12 * max(1.0, abs(c)):
                return c
        raise ValueError(text)
    return parse


VIEW = LabView("posttraining_lora", [
    Control("preset", DEFAULT.preset, one_of(PRESETS)),
    Control("rank", DEFAULT.rank, whole(1, MAX_RANK)),
    Control("alpha", DEFAULT.alpha, whole(1, MAX_ALPHA)),
    Control("targets", list(DEFAULT.targets), parse_targets, show_targets),
    Control("model", DEFAULT.model, one_of(MODELS)),
    Control("steps", DEFAULT.steps, whole(1, MAX_STEPS)),
    Control("lr", DEFAULT.lr, listed(LRS), lambda v: f"{v:g}"),
    Control("dropout", DEFAULT.dropout, listed(DROPOUTS), lambda v: f"{v:g}"),
    Control("seed", DEFAULT.seed, whole(0, SEED_MAX)),
])


@st.cache_data(max_entries=256, show_spinner=False)
def cached_counts(settings: LoraSettings) -> Outcome[LoraSettings, LoraCounts]:
    return run_lora(settings)


@dataclass
class LoraRun:
    settings: LoraSettings
    trainer: LoraTrainer
    job: Job
    n_params: int
    model_title: str
    drawn_finished: bool = False  # the page has run once since the job ended (its live view stopped refreshing)


def current_run() -> LoraRun | None:
    run = st.session_state.get(STATE_KEY)
    if run is not None and not run.job.finished:
        session_watch().track(run.job)  # this tab is here: a detach from a Wi-Fi blip is undone
    return run


def stop_run() -> None:
    run = st.session_state.get(STATE_KEY)
    if run is not None and not run.job.finished:
        run.job.stop()
        run.job.join(timeout=5.0)


def start_run(settings: LoraSettings) -> None:
    """A new fine-tune for ``settings`` (the previous one, if still going, stops)."""
    stop_run()
    base = my_trained_model() if settings.model == "trained" else get_model("smollm2-135m")
    if base is None:
        st.session_state[STATE_KEY + ".error"] = tr("posttraining_lora.no_trained")
        return
    outcome = lora_trainer(settings, base, lang())
    if outcome.result is None:
        st.session_state[STATE_KEY + ".error"] = outcome.error
        return
    st.session_state.pop(STATE_KEY + ".error", None)
    trainer = outcome.result
    job = Job(trainer.steps, total=trainer.total, name="lora")
    title = tr("posttraining_lora.model.trained") if settings.model == "trained" else base.title
    st.session_state[STATE_KEY] = LoraRun(outcome.settings, trainer, job, base_param_count(base), title)
    job.start()
    stop_when_collected(st.session_state[STATE_KEY], job)
    session_watch().track(job)


def count_controls() -> LoraSettings:
    """The counts' controls, one row: the model whose numbers are shown, r, α, the adapted projections."""
    k = VIEW.key
    cols = st.columns([1.2, 1.2, 0.8, 2])
    preset = cols[0].selectbox(tr("posttraining_lora.preset"), PRESETS, key=k("preset"))
    rank = cols[1].slider(tr("posttraining_lora.rank"), 1, MAX_RANK, key=k("rank"),
                          help=tr("posttraining_lora.rank_help"))
    alpha = int(cols[2].number_input("α", **ALPHA, key=k("alpha"), help=tr("posttraining_lora.alpha_help")))
    targets = cols[3].multiselect(tr("posttraining_lora.targets"), list(TARGETS), key=k("targets"),
                                  format_func=lambda n: f"{n} ({TARGETS[n][1]})",
                                  help=tr("posttraining_lora.targets_help"))
    return LoraSettings(preset=preset, rank=rank, alpha=alpha, targets=tuple(targets))


def run_controls(counts_settings: LoraSettings) -> LoraSettings:
    k = VIEW.key
    cols = st.columns(5)
    model = cols[0].selectbox(tr("posttraining_lora.model_label"), MODELS, key=k("model"),
                              format_func=lambda m: tr(f"posttraining_lora.model.{m}"))
    steps = int(cols[1].number_input(tr("posttraining_lora.steps"), 1, MAX_STEPS, key=k("steps")))
    lr = cols[2].select_slider(tr("posttraining_lora.lr"), LRS, key=k("lr"), format_func=lambda v: f"{v:g}")
    dropout = cols[3].select_slider(tr("posttraining_lora.dropout"), DROPOUTS, key=k("dropout"),
                                    format_func=lambda v: f"{v:g}")
    seed = int(cols[4].number_input(tr("posttraining_lora.seed"), 0, SEED_MAX, key=k("seed")))
    return LoraSettings(preset=counts_settings.preset, rank=counts_settings.rank, alpha=counts_settings.alpha,
                        targets=counts_settings.targets, dropout=dropout, model=model, steps=steps, lr=lr, seed=seed)


def counts_view(outcome: Outcome[LoraSettings, LoraCounts]) -> None:
    lg, c = lang(), outcome.result
    used = outcome.settings
    st.caption(tr("posttraining_lora.facts", model=c.preset, r=c.rank, targets=", ".join(c.targets),
                  trainable=c.chosen.trainable, full=c.full.trainable,
                  share=100.0 * c.chosen.trainable / c.full.trainable,
                  saving=c.saving, lora_gb=c.chosen.total / GB, full_gb=c.full.total / GB, ratio=c.memory_ratio,
                  scaling=used.scaling))
    left, right = st.columns(2)
    with left:
        chart(trainable_figure(c, lg), "lora_trainable")
    with right:
        chart(memory_figure(c, lg), "lora_memory")
    with st.expander(tr("posttraining_lora.table_title")):
        st.dataframe(pd.DataFrame(count_table(c, lg)), hide_index=True, width="stretch")
        st.caption(tr("posttraining_lora.table_caption"))
        st.latex(r"h = W x + \frac{\alpha}{r}\, B A x,\qquad A \in \mathbb{R}^{r\times d_{in}},\ "
                 r"B \in \mathbb{R}^{d_{out}\times r},\qquad \#\theta_{LoRA} = L \sum_{W} r\,(d_{in} + d_{out})")


def status_line(run: LoraRun) -> None:
    job = run.job
    done = sum(1 for s in job.history() if s.phase == "train")
    if job.state == WAITING:
        st.info(tr("posttraining_lora.status.queue", place=job.place(), running=job.running_jobs()))
    elif job.state == FAILED:
        report_invalid(job.error or "")
    st.progress(job.fraction, text=tr(f"posttraining_lora.status.{job.state}", step=done, total=run.settings.steps))


def buttons(run: LoraRun) -> None:
    job = run.job
    row = st.container(horizontal=True, gap="small")
    if job.state == PAUSED:
        row.button(tr("posttraining_lora.resume"), key="posttraining_lora.resume_btn", on_click=job.resume,
                   icon=":material/play_arrow:")
    else:
        row.button(tr("posttraining_lora.pause"), key="posttraining_lora.pause_btn", on_click=job.pause,
                   icon=":material/pause:", disabled=job.finished)
    row.button(tr("posttraining_lora.stop"), key="posttraining_lora.stop_btn", on_click=job.stop,
               icon=":material/stop:", disabled=job.finished)


def live() -> None:
    """The run as it is now, read from its job (the page never computes a step)."""
    lg, run = lang(), current_run()
    if run is None:
        return
    if run.job.finished and not run.drawn_finished:
        run.drawn_finished = True
        st.rerun()  # the whole page: the live view stops refreshing every REFRESH_S
    status_line(run)
    buttons(run)
    steps = run.job.history()
    chart(loss_figure(steps, run.settings.steps, lg), "lora_loss")
    before = next((s for s in steps if s.phase == "before"), None)
    after = next((s for s in steps if s.phase == "after"), None)
    if before is not None:
        st.dataframe(pd.DataFrame(answers_table(before.answers.prompts, before.answers.texts,
                                                after.answers.texts if after else None, lg)),
                     hide_index=True, width="stretch")
    if after is not None:
        st.caption(tr("posttraining_lora.adapter_size", adapter=human_bytes(after.adapter_bytes),
                      adapter_exact=after.adapter_bytes, model=run.model_title, n=run.n_params,
                      model_bytes=human_bytes(4 * run.n_params), share=adapter_share(after.adapter_bytes, run.n_params),
                      trainable=run.trainer.adapted.trainable, optimizer=after.optimizer_bytes,
                      expected=expected_optimizer_bytes(run.trainer)))
        st.caption(tr("posttraining_lora.merged", diff=after.merge_diff, scale=after.logit_scale))


def finetune_view(counts_settings: LoraSettings) -> None:
    st.subheader(tr("posttraining_lora.finetune_header"))
    st.caption(tr("posttraining_lora.finetune_intro"))
    settings = run_controls(counts_settings)
    if settings.model == "trained" and my_trained_model() is None:
        st.caption(tr("posttraining_lora.no_trained"))
    if st.button(tr("posttraining_lora.start"), type="primary", key="posttraining_lora.start_btn",
                 icon=":material/play_arrow:"):
        start_run(settings)
    error = st.session_state.get(STATE_KEY + ".error")
    if error:
        report_invalid(error)
    run = current_run()
    active = run is not None and not run.job.finished
    st.fragment(live, run_every=REFRESH_S if active else None)()


def render() -> None:
    show_problems(VIEW.open())
    settings = count_controls()
    outcome = cached_counts(settings)
    show_outcome(outcome)
    if outcome.result is not None:
        counts_view(outcome)
    finetune_view(outcome.settings)
    VIEW.publish()

