"""Streamlit glue of the post-training lab's ``grpo`` tab: the problem and the group (in the link), one GRPO run in
the background (explorer.jobs.Job in the class-wide training queue: sample the group, score, normalise, update;
Pause and Stop; stopped when the tab closes), and the PPO / DPO / GRPO table from explorer.sizing."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from ..jobs import FAILED, PAUSED, WAITING, Job, stop_when_collected
from ..labs.posttraining_grpo import (COMPARE_MODELS, FORMAT_REWARD, GROUPS, MAX_NEW_TOKENS, MAX_UPDATES,
                                      PROBLEMS, SEED_MAX, TEMPERATURES, TRAINABLE_LAYERS, GRPORun, GRPOSettings,
                                      GRPOStep, checked, compare_methods, params_of)
from ..models.quantization import smollm2_weights
from ..preference import GRPO_CLIP_EPS, GRPO_KL_BETA, GRPO_STD_EPS
from ..sizing import GB, human_count
from ..viz.posttraining_grpo import change_figure
from .common import chart, report_invalid, show_outcome
from .i18n import lang, say, tr
from .models import get_model
from .training import REFRESH_S, session_watch
from .url_state import Control, LabView, one_of, show_problems, whole

MODEL = "smollm2-135m"
STATE_KEY = "posttraining_grpo.state"
DEFAULT = GRPOSettings()

VIEW = LabView("posttraining_grpo", [
    Control("problem", DEFAULT.problem, one_of(PROBLEMS)),
    Control("group", DEFAULT.group, one_of(GROUPS)),
    Control("temperature", DEFAULT.temperature, one_of(TEMPERATURES)),
    Control("seed", DEFAULT.seed, whole(0, SEED_MAX)),
    Control("updates", DEFAULT.updates, whole(1, MAX_UPDATES)),
    Control("compare_model", DEFAULT.compare_model, one_of(COMPARE_MODELS)),
])


@dataclass
class GRPOJob:
    number: int
    settings: GRPOSettings
    job: Job[GRPOStep]


@dataclass
class GRPOState:
    current: GRPOJob | None = None
    runs: int = 0


def state() -> GRPOState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = GRPOState()
    current = st.session_state[STATE_KEY]
    if current.current is not None and not current.current.job.finished:
        session_watch().track(current.current.job)
    return current


def start(run_state: GRPOState, settings: GRPOSettings) -> GRPOJob:
    stop(run_state)
    trainer = GRPORun(get_model(MODEL), settings)
    run_state.runs += 1
    job = Job(trainer.steps, total=settings.updates + 2, name="grpo")  # the group, each update, the answers after
    current = GRPOJob(run_state.runs, settings, job)
    run_state.current = current
    job.start()
    stop_when_collected(run_state, job)
    session_watch().track(job)
    return current


def stop(run_state: GRPOState) -> None:
    current = run_state.current
    if current is not None and not current.job.finished:
        current.job.stop()


def controls() -> GRPOSettings:
    a, b, c, d, e = st.columns(5)
    problem = a.selectbox(tr("posttraining_grpo.problem"), PROBLEMS, key=VIEW.key("problem"),
                          format_func=lambda p: f"{p}=")
    group = b.select_slider("G", GROUPS, key=VIEW.key("group"), help=tr("posttraining_grpo.group_help"))
    temperature = c.select_slider(tr("posttraining_grpo.temperature"), TEMPERATURES, key=VIEW.key("temperature"))
    seed = int(d.number_input(tr("posttraining_grpo.seed"), 0, SEED_MAX, key=VIEW.key("seed")))
    updates = int(e.number_input(tr("posttraining_grpo.updates"), 1, MAX_UPDATES, key=VIEW.key("updates")))
    return dataclasses.replace(DEFAULT, problem=problem, group=group, temperature=temperature, seed=seed,
                               updates=updates)


def answers_table(step: GRPOStep, after: bool) -> pd.DataFrame:
    res = step.result
    yes, no = tr("posttraining_grpo.yes"), tr("posttraining_grpo.no")
    table = {
        tr("posttraining_grpo.col.answer"): [a.text for a in res.answers],
        tr("posttraining_grpo.col.correct"): [yes if a.correct else no for a in res.answers],
        tr("posttraining_grpo.col.finished"): [yes if a.finished else no for a in res.answers],
        tr("posttraining_grpo.col.reward"): [a.reward for a in res.answers],
        tr("posttraining_grpo.col.advantage"): [round(a.advantage, 3) for a in res.answers],
        tr("posttraining_grpo.col.before"): [round(a.logp_before, 2) for a in res.answers],
    }
    if after:
        table[tr("posttraining_grpo.col.after")] = [round(a.logp_after, 2) for a in res.answers]
        table[tr("posttraining_grpo.col.change")] = [round(a.change, 2) for a in res.answers]
    return pd.DataFrame(table)


def live(run_state: GRPOState, lg: str) -> None:
    current = run_state.current
    if current is None:
        st.caption(tr("posttraining_grpo.press_run"))
        return
    job = current.job
    flag = f"posttraining_grpo.redrawn_{current.number}"
    if job.finished and not st.session_state.get(flag):
        st.session_state[flag] = True
        st.rerun()
    now = job.state
    if now == WAITING:
        st.info(tr("posttraining_grpo.status.queue", place=job.place(), running=job.running_jobs()))
    elif now == FAILED:
        report_invalid(job.error or "")
    history = job.history()
    updates = [s for s in history if s.phase == "update"]
    st.progress(job.fraction, text=tr(f"posttraining_grpo.status.{now}", n=current.number, step=len(updates),
                                      total=current.settings.updates))
    row = st.container(horizontal=True, gap="small")
    if now == PAUSED:
        row.button(tr("posttraining_grpo.resume"), key="posttraining_grpo.resume", on_click=job.resume,
                   icon=":material/play_arrow:")
    else:
        row.button(tr("posttraining_grpo.pause"), key="posttraining_grpo.pause", on_click=job.pause,
                   icon=":material/pause:", disabled=job.finished)
    row.button(tr("posttraining_grpo.stop"), key="posttraining_grpo.stop", on_click=job.stop,
               icon=":material/stop:", disabled=job.finished)
    sampled = next((s for s in history if s.phase == "sampled"), None)
    after = next((s for s in history if s.phase == "after"), None)
    if sampled is None:
        st.caption(tr("posttraining_grpo.sampling", g=current.settings.group, max_new=MAX_NEW_TOKENS))
        return
    res = sampled.result
    st.caption(tr("posttraining_grpo.group_caption", mean=res.mean_reward, std=res.std_reward, eps=GRPO_STD_EPS))
    if after is not None:
        chart(change_figure(after.result, lg), "posttraining_grpo_change")
    st.dataframe(answers_table(after or sampled, after is not None), hide_index=True, width="stretch")
    if updates:
        st.caption(tr("posttraining_grpo.updates_caption", n=len(updates), first=updates[0].loss,
                      last=updates[-1].loss, kl=updates[-1].kl))


def comparison(settings: GRPOSettings) -> None:
    st.subheader(tr("posttraining_grpo.compare_header"))
    model = st.selectbox(tr("posttraining_grpo.compare_model"), COMPARE_MODELS, key=VIEW.key("compare_model"))
    VIEW.publish()
    yes, no = tr("posttraining_grpo.yes"), tr("posttraining_grpo.no")
    needs = compare_methods(model, settings.group)
    gb = lambda x: f"{x / GB:,.1f}"  # noqa: E731
    st.dataframe(pd.DataFrame({
        tr("posttraining_grpo.cmp.method"): [tr(f"posttraining_grpo.method.{m.method}") for m in needs],
        tr("posttraining_grpo.cmp.reward_model"): [yes if m.reward_model else no for m in needs],
        tr("posttraining_grpo.cmp.value_model"): [yes if m.value_model else no for m in needs],
        tr("posttraining_grpo.cmp.reference_model"): [yes if m.reference_model else no for m in needs],
        tr("posttraining_grpo.cmp.samples"): [m.samples_per_prompt for m in needs],
        tr("posttraining_grpo.cmp.policy_gb"): [gb(m.policy_bytes) for m in needs],
        tr("posttraining_grpo.cmp.others_gb"): [gb(m.value_bytes + m.reference_bytes + m.reward_bytes)
                                               for m in needs],
        tr("posttraining_grpo.cmp.kv_gb"): [gb(m.kv_bytes) for m in needs],
        tr("posttraining_grpo.cmp.total_gb"): [gb(m.total_bytes) for m in needs],
    }), hide_index=True, width="stretch")
    st.caption(tr("posttraining_grpo.compare_caption", model=model, params=human_count(params_of(model)),
                  g=settings.group))


def render() -> None:
    show_problems(VIEW.open())
    lg = lang()
    settings = controls()
    shown = checked(settings)
    show_outcome(shown)
    settings = dataclasses.replace(shown.settings, compare_model=settings.compare_model)
    st.latex(r"\hat A_i=\frac{r_i-\mathrm{mean}(r)}{\mathrm{std}(r)+\epsilon},\quad "
             r"J=\frac1G\sum_i\frac1{|o_i|}\sum_t\Big[\min\big(\rho_{i,t}\hat A_i,\,"
             r"\mathrm{clip}(\rho_{i,t},1\pm\varepsilon)\hat A_i\big)-\beta\,\mathbb{D}_{KL}\Big]")
    st.caption(tr("posttraining_grpo.rule", format_reward=FORMAT_REWARD, max_new=MAX_NEW_TOKENS, clip=GRPO_CLIP_EPS,
                  beta=GRPO_KL_BETA, layers=TRAINABLE_LAYERS))
    run_state = state()
    pressed = st.button(tr("posttraining_grpo.run"), type="primary", key="posttraining_grpo.go",
                        icon=":material/play_arrow:")
    if pressed:
        start(run_state, settings)
    active = run_state.current is not None and not run_state.current.job.finished
    st.fragment(lambda: live(run_state, lg), run_every=REFRESH_S if active else None)()
    comparison(settings)
    st.caption(say(smollm2_weights().note))
