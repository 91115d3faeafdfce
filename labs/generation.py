"""Generation lab: watch a language model write one token at a time, and every choice it makes on the way."""
import streamlit as st

from explorer import limits
from explorer.labs import generation as lab
from explorer.safe_text import escape_markdown
from explorer.ui.common import chart, page_header, presenting, report_invalid, report_warning
from explorer.ui.generation import (VIEW, decoding_controls, generation_queue, get_generator_model, lab_state,
                                    labels, model_choices, model_labels, quantization_type, smollm2_note,
                                    text_markdown, wait_for_engine, wait_for_turn)
from explorer.ui.i18n import lang, say, tr
from explorer.ui.remote_engine import remote_for
from explorer.serving.remote import start_run as start_remote_run
from explorer.ui.token_chips import token_chips
from explorer.ui.url_state import link_and_reset, show_problems
from explorer.viz.generation import (attention_over_context, candidate_bars, entropy_line, head_labels, quoted,
                                     speed_chart, timeline)

ANSWER_HEIGHT = 150  # px: the answer box keeps a fixed size and scrolls, so the page below it does not jump; short
# enough that its newest line is on a 1366x768 laptop's first screen, beside the newest token's candidates chart

CLM = (r"$$P(x_1,\dots,x_n)=\prod_{t} P(x_t \mid x_{<t}),\qquad "
       r"P(x_t = i \mid x_{<t}) = \mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}}$$")
about = "\n\n".join([tr("generation.about_body"), CLM, smollm2_note()])
if presenting():  # one folded block above the controls, so the buttons and the answer stay on the first screen
    page_header(tr("generation.title"), "\n\n".join([tr("generation.intro"), about]), tr("generation.course_section"))
else:
    page_header(tr("generation.title"), tr("generation.intro"), tr("generation.course_section"))
show_problems(VIEW.open())
with st.sidebar:
    link_and_reset(VIEW)
state = lab_state()
was_interrupted = state.interrupted()

# ---- one screen: the model in a row; the prompt, the buttons and the answer (left) beside the newest token's
# candidates chart (right); the decoding settings in the sidebar. The chart starts as high as the prompt, so once a
# token is written its choice is on the first screen of a laptop and of a projector, presenting or not.
model_col, format_col = st.columns([3, 2], gap="medium", vertical_alignment="bottom")
with model_col:
    models = model_choices()  # with "my trained model" once the training lab made one in this session
    VIEW.keep_valid("model", lambda name: name in models, lab.REAL_MODEL)
    model_name = st.selectbox(tr("generation.model"), models, format_func=model_labels(),
                              key=VIEW.key("model"))
with format_col:
    chat = st.radio(tr("generation.format"), [True, False], horizontal=True, key=VIEW.key("chat"),
                    format_func=labels(lambda v: "generation.chat" if v else "generation.plain"),
                    help=tr("generation.format_help"))
pm = get_generator_model(model_name)
engine = remote_for(model_name) if model_name != lab.TRAINED_MODEL else None  # a shared engine process generates
# instead of this one (EXPLORER_ENGINE_URL); a session's own trained model exists in this process only
if engine is not None:  # one line across the page, above the prompt: on the first screen, as the buttons are
    st.caption(tr("serving.remote_note"), help=tr("serving.remote_help", url=engine.base_url))
left, right = st.columns(2, gap="medium")
with left:
    prompt = st.text_area(tr("generation.prompt"), key=VIEW.key("prompt"), height=68,
                          max_chars=limits.GENERATION_PROMPT_MAX_CHARS, help=tr("generation.prompt_help"))
    buttons = st.container(horizontal=True, gap="small")
    problem_slot = st.container()  # the fallback and the error, once the lab has read the settings
    notice = st.empty()
    output = st.container(border=True, key="gen_output")
with right:
    newest_chart = st.container()  # the candidates of the inspected token (the newest unless one is picked)
    newest_step = st.container()  # which token: the slider and the sentence about its choice
    details = st.container()  # the limits and what the model reads, once the lab has read the settings
    if model_name == lab.REAL_MODEL:
        st.caption(tr("generation.chinese_note"))
        st.caption(tr("generation.smollm2_caption", context=pm.config.max_seq_len, quant=quantization_type()))
    else:
        st.caption(tr("generation.tiny_caption", title=pm.title, context=pm.config.max_seq_len))
    if not presenting():  # when presenting it is folded into the header
        with st.expander(tr("generation.about")):
            st.markdown(about)

with st.sidebar:
    requested = decoding_controls(model_name, prompt, chat)
    with st.expander(tr("generation.formulas")):
        st.markdown(tr("generation.formulas_order"))
        st.markdown(tr("generation.formulas_penalty"))
        st.latex(r"z_i \leftarrow \begin{cases} z_i/\theta & z_i>0 \\ z_i\,\theta & z_i \le 0\end{cases}")
        st.markdown(tr("generation.formulas_temperature"))
        st.latex(r"p_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}")
        st.markdown(tr("generation.formulas_top"))
        st.latex(r"\sum_{i\in V_p} p_i \ge p \qquad\qquad p_i \ge \text{min-}p \cdot \max_j p_j")
        st.markdown(tr("generation.formulas_rest"))
VIEW.publish()

outcome = lab.run(pm, requested)
with problem_slot:
    if outcome.fallback:
        report_warning(outcome.fallback)
    if outcome.error:
        report_invalid(outcome.error)
prompt_ok = outcome.ok
started_with = outcome.settings

with buttons:  # one row that wraps rather than cut a label short: a projector's large text in a laptop's column
    run_all = st.button(tr("generation.generate"), type="primary", key="gen_go", disabled=not prompt_ok,
                        width="stretch")
    one_more = st.button(tr("generation.next_token"), key="gen_step", disabled=not prompt_ok, width="stretch",
                         help=tr("generation.next_token_help"))
    st.button(tr("generation.stop"), key="gen_stop", disabled=not run_all, width="stretch",
              help=tr("generation.stop_help"))
    if st.button(tr("generation.reset"), key="gen_reset", width="stretch", help=tr("generation.reset_help")):
        state.reset()

with details:
    st.caption(say(limits.prompt_limits_note()))
    if outcome.result is not None:
        with st.expander(tr("generation.reads", n=len(outcome.result), cap=limits.GENERATION_MAX_PROMPT_TOKENS)):
            st.markdown(token_chips(outcome.result.labels))


def new_run():
    return lab.start_run(pm, outcome) if engine is None else start_remote_run(engine, pm, outcome)


def mode_caption(run) -> str:
    if run.prompt.chat:
        return tr("generation.mode_chat")
    return tr("generation.mode_plain", text=escape_markdown(run.prompt.text[:200]))


# The text so far lives in the session's run and is drawn here, above everything slow, on every script run: a stop
# at any moment (the page's Stop, Streamlit's own, a new click) leaves it and the controls on the page. The text box
# has a fixed height and autoscroll: the browser keeps it scrolled to its bottom as the text grows, so the newest
# words stay in sight on the first screen and the page below does not jump.
with output:
    heading = st.empty()
    with st.container(key="gen_text", height=ANSWER_HEIGHT, border=False, autoscroll=True):
        text_slot = st.empty()
    status = st.empty()
if state.run is not None and state.run.steps:  # before any step is computed: a stop during it keeps the text
    heading.caption(mode_caption(state.run))
    text_slot.markdown(text_markdown(state.run.text))

if run_all and prompt_ok:
    run = state.start(new_run(), started_with, stream=True)
    wait_for_engine(run, notice, lang())  # the model's engine decodes a few runs together; the rest wait in line
    heading.caption(mode_caption(run))
    text_slot.markdown(text_markdown(""))
    drawn = ""
    for step in run:
        # A page behind the engine (a whole class decoding, this server busy) reads the steps already decoded and
        # draws the newest text once: drawing each would only add to the work that made it late.
        if run.steps_ready() and step.finish is None:
            continue
        if run.text != drawn:
            drawn = run.text
            text_slot.markdown(text_markdown(drawn))
        tps = lab.summarize(run.steps).tokens_per_second
        status.caption(tr("generation.streaming", n=step.index + 1, cap=run.settings.max_new_tokens, tps=tps))
    state.end_stream(run)
elif one_more and prompt_ok:
    run, changed = state.run_to_step(started_with, new_run)
    if changed:
        notice.info(tr("generation.new_run"))
    wait_for_engine(run, notice, lang())
    next(run, None)

run = state.run
if getattr(run, "error", None) is not None:  # a remote engine that could not be reached or refused the run
    with problem_slot:
        report_invalid(run.error)
if run is None or not run.steps:
    text_slot.markdown(tr("generation.press_generate"))
    newest_chart.caption(tr("generation.chart_here"))
    st.stop()

# ---- the run ----------------------------------------------------------------------------------------------------
# A script run that this one superseded may still be computing one step of this run: let it land first, so the
# text, the counts and the charts below describe the same tokens.
run.settle(timeout=5.0)
steps = list(run.steps)
summary = lab.summarize(steps)
heading.caption(mode_caption(run))
text_slot.markdown(text_markdown(summary.text))
with status.container():
    if summary.finish is not None:
        st.caption(tr("generation.finished", n=len(steps), reason=summary.finish))
        if summary.cut_character:
            st.caption(tr("generation.cut_character"))
    elif state.stopped or was_interrupted:
        st.warning(tr("generation.stopped", n=len(steps)))
    else:
        st.caption(tr("generation.paused", n=len(steps)))
    if state.started_with != started_with:
        st.caption(tr("generation.other_settings"))

m1, m2, m3, m4 = st.columns(4)
m1.metric(tr("generation.metric.tokens"), summary.n_tokens)
m2.metric(tr("generation.metric.tps"), tr("generation.metric.tps_value", tps=summary.tokens_per_second),
          help=tr("generation.metric.tps_help"))
m3.metric(tr("generation.metric.first_ms"), tr("generation.metric.first_ms_value", ms=summary.first_token_ms),
          help=tr("generation.metric.first_ms_help"))
m4.metric(tr("generation.metric.entropy"), tr("generation.metric.entropy_value", h=summary.mean_entropy_bits),
          help=tr("generation.metric.entropy_help"))
st.caption(tr("generation.decoding_caption", how=say(run.settings.describe()),
              cache=tr("generation.cache_on" if run.use_cache else "generation.cache_off")))
if getattr(state.started_with, "model", None) == lab.REAL_MODEL:
    st.caption(tr("generation.smollm2_numbers", quant=quantization_type()))

# The token to inspect: the newest after every step (the slider's key changes with the count), or one the student
# picks; its candidates open the right column, its attention the first tab below.
n = len(steps)
pick = n
with newest_step:
    if n > 1:
        pick = st.slider(tr("generation.inspect"), 1, n, n, key=f"gen_inspect_{state.number}_{n}",
                         help=tr("generation.inspect_help"))
    step = steps[pick - 1]
    st.markdown(tr("generation.step_line", n=pick, token=escape_markdown(quoted(step.label)), p=step.prob,
                   model_p=step.model_prob, kept=step.n_kept, vocab=run.model.cfg.vocab_size,
                   h=step.model_entropy, choices=2 ** step.model_entropy))
with newest_chart:
    chart(candidate_bars(step, lang()), key="gen_candidates")

tab_steps, tab_timeline, tab_speed = st.tabs([tr("generation.tab.steps"), tr("generation.tab.timeline"),
                                              tr("generation.tab.speed")])

with tab_steps:
    heads = [None, *range(run.model.cfg.n_head)]
    head = st.selectbox(tr("generation.heads.label"), heads, key=f"gen_head_{run.model.cfg.n_head}",
                        format_func=head_labels(lang()))
    if step.attention_rows is None:
        st.caption(tr("serving.no_attention"))
    else:
        chart(attention_over_context(step, run.context_labels(step), lang=lang(), head=head), key="gen_attention")
    st.caption(tr("generation.attention_caption"))
    st.latex(r"a = \mathrm{softmax}\!\left(\frac{q_{t}\,K_{\le t}^\top}{\sqrt{d_k}}\right)")

with tab_timeline:
    generated_labels = run.generated_labels()
    chart(timeline(steps, generated_labels, lang=lang()), key="gen_timeline")
    chart(entropy_line(steps, generated_labels, lang=lang()), key="gen_entropy")

with tab_speed:
    st.markdown(tr("generation.speed_intro"))
    st.markdown(tr("generation.speed_formula_lead"))
    st.latex(r"\underbrace{\textstyle\sum_{t=0}^{n-1}(n_0+t)}_{\text{KV cache}\ \times}\qquad\qquad "
             r"\underbrace{n_0 + (n-1)}_{\text{KV cache}\ \checkmark}")
    n_replay = lab.replay_length(run)
    if getattr(run, "remote", False):
        st.caption(tr("serving.no_speed"))
    elif len(steps) < 2:
        st.caption(tr("generation.speed_need_two"))
    elif st.button(tr("generation.speed_button", n=n_replay), key="gen_measure"):
        with st.spinner(tr("generation.speed_spinner")):
            with generation_queue().join() as ticket:
                wait_for_turn(ticket, notice, lang())
                state.speed = lab.compare_cache(run, n_replay)
    if state.speed:
        s1, s2, s3 = st.columns(3)
        s1.metric(tr("generation.speed_on"), tr("generation.metric.tps_value", tps=state.speed.on.tokens_per_second))
        s2.metric(tr("generation.speed_off"), tr("generation.metric.tps_value",
                                                 tps=state.speed.off.tokens_per_second))
        s3.metric(tr("generation.speedup"), tr("generation.speedup_value", x=state.speed.speedup))
        chart(speed_chart(state.speed, run.generated_labels(), lang=lang()), key="gen_speed")
        st.caption(tr("generation.speed_caption", values=run.model.cfg.kv_values_per_token))
