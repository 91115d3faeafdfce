"""Training lab: a tiny GPT learns 唐诗 (or Shakespeare, or the student's own text) while the class watches."""
import math

import streamlit as st

from explorer.jobs import FAILED, PAUSED, WAITING
from explorer.safe_text import escape_markdown
from explorer.ui.common import chart, page_header, report_invalid, show_outcome
from explorer.ui.i18n import lang, say, tr
from explorer.ui.training import (REFRESH_S, VIEW, cached_batch_view, collect, download_bytes, lab_state,
                                  my_trained_model, preview, settings_controls, start_training, trained_example_text,
                                  trained_prompt, TRAINED,
                                  upload_model)
from explorer.ui.url_state import link_and_reset, show_problems
from explorer.viz.training import (attention_figure, batch_figure, compare_figure, grad_norm_figure, loss_figure,
                                   schedule_figure)

PANELS = ("samples", "attention", "lr", "grad")

page_header(tr("training.title"), tr("training.intro"), tr("training.course_section"))
show_problems(VIEW.open())
requested = settings_controls()
VIEW.publish()
with st.sidebar:
    link_and_reset(VIEW)

lg = lang()
state = lab_state()
collect(state)
outcome = preview(state, requested)
show_outcome(outcome)
trainer = outcome.result

train_col, note_col = st.columns([1, 3], vertical_alignment="center")
with train_col:
    pressed = st.button(tr("training.train"), type="primary", key="training.go", disabled=trainer is None,
                        width="stretch", icon=":material/play_arrow:")
if pressed and trainer is not None:
    start_training(state, outcome)
run = state.current
active = run is not None and not run.job.finished
with note_col:
    if run is not None and run.settings != outcome.settings:
        st.caption(tr("training.other_settings", n=run.number))
    elif trainer is not None and run is None:
        st.caption(tr("training.ready", steps=trainer.settings.steps, params=trainer.n_params,
                      vocab=trainer.config.vocab_size))


def status_line(run) -> None:
    job, latest = run.job, run.job.latest
    done = latest.step if latest is not None else 0
    total = run.settings.steps
    state_now = job.state
    if state_now == WAITING:
        st.info(tr("training.status.queue", place=job.place(), running=job.running_jobs()))
    elif state_now == FAILED:
        report_invalid(job.error or "")
    words = tr(f"training.status.{state_now}", step=done, total=total)
    st.progress(min(1.0, done / total) if total else 1.0, text=words)


def buttons(run) -> None:
    job = run.job
    row = st.container(horizontal=True, gap="small")
    if job.state == PAUSED:
        row.button(tr("training.resume"), key="training.resume", on_click=job.resume, icon=":material/play_arrow:")
    else:
        row.button(tr("training.pause"), key="training.pause", on_click=job.pause, icon=":material/pause:",
                   disabled=job.finished)
    row.button(tr("training.stop"), key="training.stop", on_click=job.stop, icon=":material/stop:",
               disabled=job.finished)


def metrics(run, steps) -> None:
    latest = steps[-1]
    measured = [s for s in steps if s.val_loss is not None]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(tr("training.metric.loss"), tr("training.metric.loss_value", loss=latest.loss),
              help=tr("training.metric.loss_help"))
    if measured:
        m2.metric(tr("training.metric.val_loss"), tr("training.metric.loss_value", loss=measured[-1].val_loss),
                  help=tr("training.metric.val_loss_help", step=measured[-1].step))
    m3.metric(tr("training.metric.perplexity"), tr("training.metric.perplexity_value", ppl=math.exp(latest.loss)),
              help=tr("training.metric.perplexity_help"))
    m4.metric(tr("training.metric.tps"), tr("training.metric.tps_value", tps=latest.tokens_per_s),
              help=tr("training.metric.tps_help", elapsed=latest.elapsed_s))
    first = steps[0]
    if first.step == 0:
        ln_v = math.log(run.vocab_size)
        st.caption(tr("training.step0", loss=first.loss, vocab=run.vocab_size, ln_v=ln_v,
                      pct=100 * (first.loss - ln_v) / ln_v))


def samples_tab(checkpoints) -> None:
    written = [s for s in checkpoints if s.sample is not None]
    if not written:
        st.caption(tr("training.samples.none"))
        return
    for s in reversed(written[-3:]):
        st.caption(tr("training.samples.at", step=s.step, loss=s.loss))
        st.code(s.sample, language=None, wrap_lines=True)
    if len(written) > 3:
        with st.expander(tr("training.samples.older", n=len(written) - 3)):
            for s in reversed(written[:-3]):
                st.caption(tr("training.samples.at", step=s.step, loss=s.loss))
                st.code(s.sample, language=None, wrap_lines=True)


def attention_tab(run, checkpoints) -> None:
    maps = [s for s in checkpoints if s.attention is not None]
    if not maps:
        st.caption(tr("training.attention.none"))
        return
    cfg = run.trainer.config
    layer = min(requested.attn_layer, cfg.n_layer - 1)  # the sidebar's head, within this run's model
    head = min(requested.attn_head, cfg.n_head - 1)
    pick = maps[-1]
    if len(maps) > 1:
        at = st.select_slider(tr("training.attention.checkpoint"), [s.step for s in maps], value=maps[-1].step,
                              key=f"training.checkpoint_{run.number}_{len(maps)}")
        pick = next(s for s in maps if s.step == at)
    amap = pick.attention
    chart(attention_figure(amap.all_weights[layer, head], amap.labels, step=pick.step, layer=layer, head=head, lang=lg),
          "training_attention")
    st.caption(tr("training.attention.caption"))


def live() -> None:
    """The run as it is now: read from its job (the page never computes a step), redrawn every second while it goes."""
    run = state.current
    if run is None:
        if trainer is not None:
            chart(loss_figure([], vocab_size=trainer.config.vocab_size, lang=lg, total_steps=trainer.settings.steps),
                  "training_loss")
            st.caption(tr("training.press_train"))
        return
    if collect(state) or (active and run.job.finished):
        st.rerun()  # the whole page: the run joins the comparison and "my trained model"
    status_line(run)
    buttons(run)
    steps = run.job.history()
    chart(loss_figure(steps, vocab_size=run.vocab_size, lang=lg, total_steps=run.settings.steps), "training_loss")
    if not steps:
        return
    metrics(run, steps)
    checkpoints = run.job.checkpoints()
    # One panel at a time: the live view is redrawn every REFRESH_S for every student training at once, and four
    # charts rebuilt per refresh cost the server four times one.
    panel = st.segmented_control(tr("training.tab.label"), PANELS, default=PANELS[0], key="training.panel",
                                 format_func=lambda p: tr(f"training.tab.{p}"), label_visibility="collapsed")
    if panel == "samples":
        samples_tab(checkpoints)
    elif panel == "attention":
        attention_tab(run, checkpoints)
    elif panel == "lr":
        chart(schedule_figure(run.trainer.schedule(), lang=lg, done=steps[-1].step + 1, warmup=run.settings.warmup),
              "training_lr_live")
    elif panel == "grad":
        chart(grad_norm_figure(steps, lang=lg, clip=run.settings.clip or None), "training_grad")
        st.caption(tr("training.grad_caption"))


st.fragment(live, run_every=REFRESH_S if active else None)()

if trainer is None:
    st.stop()

# ---- before training: the data, the model, the objective and the optimiser ---------------------------------------
used = outcome.settings
st.header(tr("training.setup.header"))
train_text, val_text = trainer.split
st.markdown(tr("training.setup.data", train_chars=len(train_text), val_chars=len(val_text),
               train_tokens=trainer.train_tokens, val_tokens=trainer.val_tokens, vocab=trainer.config.vocab_size,
               tokenizer=tr(f"training.tokenizer_name.{used.tokenizer}"), pct=100 * used.val_fraction))
with st.expander(tr("training.setup.split")):
    left, right = st.columns(2)
    left.caption(tr("training.setup.train_part"))
    left.code(train_text[:400], language=None, wrap_lines=True)
    right.caption(tr("training.setup.val_part"))
    right.code(val_text[:400], language=None, wrap_lines=True)
st.markdown(tr("training.setup.model", params=trainer.n_params, n_layer=used.n_layer, d_model=used.d_model,
               n_head=used.n_head, n_kv_head=used.n_kv_head, context=used.context,
               positional=tr(f"training.positional_name.{used.positional}"),
               norm=tr(f"training.norm_name.{used.norm}"),
               position=tr(f"training.norm_position_name.{used.norm_position}"), activation=used.activation))

st.subheader(tr("training.objective.header"))
view_trainer = run.trainer if run is not None and run.settings == used else trainer
view = cached_batch_view(state, view_trainer, lg)
chart(batch_figure(view.inputs, view.targets, list(view.losses), vocab_size=view.vocab_size, lang=lg),
      "training_batch")
st.latex(r"\mathcal{L} = -\frac{1}{BT}\sum_{b,t}\log p_\theta\!\left(x_{b,t+1}\mid x_{b,\le t}\right),"
         r"\qquad \mathrm{PPL} = e^{\mathcal{L}},\qquad \mathcal{L}_{\text{uniform}} = \ln V")
st.caption(tr("training.objective.caption", loss=view.loss, ppl=view.perplexity, vocab=view.vocab_size,
              ln_v=view.uniform_loss, step=view_trainer.next_step))

st.subheader(tr("training.optimiser.header"))
chart(schedule_figure(trainer.schedule(), lang=lg, warmup=used.warmup), "training_schedule")
st.caption(tr("training.optimiser.schedule_caption", lr=used.lr, warmup=used.warmup, steps=used.steps,
              floor=used.lr * used.min_lr_ratio))
with st.expander(tr("training.optimiser.formulas")):
    st.markdown(tr("training.optimiser.adamw"))
    st.latex(r"\theta \leftarrow \theta - \eta\,\lambda\,\theta \qquad m \leftarrow \beta_1 m + (1-\beta_1)\,g"
             r"\qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2")
    st.latex(r"\hat m = \frac{m}{1-\beta_1^t},\quad \hat v = \frac{v}{1-\beta_2^t},\quad "
             r"\theta \leftarrow \theta - \eta\,\frac{\hat m}{\sqrt{\hat v}+\varepsilon}")
    st.markdown(tr("training.optimiser.values", beta1=used.beta1, beta2=used.beta2, eps=used.eps,
                   wd=used.weight_decay))
    st.markdown(tr("training.optimiser.cosine"))
    st.latex(r"\eta(s) = \begin{cases}\eta_{\max}\,\dfrac{s}{W} & s < W\\[4pt] \eta_{\max}\left(r + (1-r)\,"
             r"\tfrac12\left(1+\cos\dfrac{\pi(s-W)}{S-W}\right)\right) & s \ge W\end{cases}")
    st.markdown(tr("training.optimiser.clip"))
    st.latex(r"g \leftarrow g\cdot\min\!\left(1, \frac{c}{\lVert g\rVert_2}\right)")

# ---- compare runs ----------------------------------------------------------------------------------------------------
st.header(tr("training.compare.header"))
finished = state.finished
if len(finished) < 2:
    st.caption(tr("training.compare.need_two", n=len(finished)))
else:
    by_number = {r.number: r for r in finished}
    numbers = list(by_number)
    a_col, b_col = st.columns(2)
    a = a_col.selectbox(tr("training.compare.first"), numbers, index=len(numbers) - 2, key="training.compare_a",
                        format_func=lambda n: by_number[n].label(lg))
    b = b_col.selectbox(tr("training.compare.second"), numbers, index=len(numbers) - 1, key="training.compare_b",
                        format_func=lambda n: by_number[n].label(lg))
    chart(compare_figure([(by_number[n].label(lg), by_number[n].steps) for n in dict.fromkeys((a, b))], lang=lg),
          "training_compare")
    st.caption(tr("training.compare.caption"))

# ---- my trained model ------------------------------------------------------------------------------------------------
st.header(tr("training.mine.header"))
st.caption(tr("training.mine.explain"))
mine_slot = st.container()  # filled after the uploader: an upload in this run is the model shown
upload = st.file_uploader(tr("training.mine.upload"), type=["zip"], key="training.upload",
                          help=tr("training.mine.upload_help"))
if upload is not None and upload.file_id != state.upload_id:
    state.upload_id = upload.file_id  # read once: a rerun with the same file in the box changes nothing
    try:
        loaded = upload_model(upload.getvalue())
    except ValueError as err:  # a malformed file: a sentence, and the model in place stays
        report_invalid(err)
    else:
        st.success(tr("training.mine.uploaded", title=escape_markdown(str(say(loaded.title)))))
mine = my_trained_model()
with mine_slot:
    if mine is None:
        st.caption(tr("training.mine.none"))
    else:
        st.markdown(tr("training.mine.have", title=escape_markdown(str(say(mine.title)))))
        links = st.container(horizontal=True, gap="small")
        links.page_link("labs/generation.py", label=tr("training.mine.to_generation"), icon=":material/edit_note:",
                        query_params={"model": TRAINED, "chat": "0", "prompt": trained_prompt()})
        links.page_link("labs/internals.py", label=tr("training.mine.to_internals"), icon=":material/neurology:",
                        query_params={"model": TRAINED, "text": trained_example_text()})
        st.download_button(tr("training.mine.download"), download_bytes, file_name="my-trained-model.zip",
                           mime="application/zip", key="training.download", icon=":material/download:",
                           on_click="ignore")
