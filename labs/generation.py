"""Generation lab: watch a language model write one token at a time, and every choice it makes on the way."""
import streamlit as st

from explorer import limits
from explorer.labs import generation as lab
from explorer.models.quantization import smollm2_weights
from explorer.safe_text import escape_markdown
from explorer.ui.common import chart, page_header, report_invalid
from explorer.ui.generation import (MODEL_LABELS, decoding_controls, generation_queue, get_generator_model, lab_state,
                                    text_markdown, wait_for_turn)
from explorer.ui.token_chips import token_chips
from explorer.viz.generation import (attention_over_context, candidate_bars, entropy_line, quoted, speed_chart,
                                     timeline)


page_header(
    "Generation lab",
    "A decoder-only model writes by **causal language modelling**: it reads the text so far, scores every token of "
    "its vocabulary, turns the scores into probabilities, picks one token, appends it and starts again "
    "(今天天气 → 今天天气很 → 今天天气很好). Here you watch SmolLM2-135M-Instruct do it live and see every "
    "choice. The tiny models have random weights: their gibberish shows that all the fluency lives in the "
    "trained weights, not in the architecture.",
    "预训练任务——CLM · 推理与部署 (KV Cache)",
)
st.latex(r"P(x_1,\dots,x_n)=\prod_{t} P(x_t \mid x_{<t}),\qquad "
         r"P(x_t = i \mid x_{<t}) = \mathrm{softmax}(z)_i = \frac{e^{z_i}}{\sum_j e^{z_j}}")
state = lab_state()
was_interrupted = state.interrupted()

# ---- the prompt -----------------------------------------------------------------------------------------------
left, right = st.columns([3, 2], gap="large")
with left:
    model_name = st.selectbox("Model", lab.MODEL_CHOICES, format_func=MODEL_LABELS.get, key="gen_model")
    pm = get_generator_model(model_name)
    st.caption(f"{pm.title}. Context window: {pm.config.max_seq_len} tokens.")
    if model_name == lab.REAL_MODEL:
        st.caption(smollm2_weights().note)
    chat = st.radio("Prompt format", ["Chat", "Plain completion"], horizontal=True, key="gen_format",
                    help="Chat wraps your text in the model's chat template, the format it was fine-tuned on, and "
                         "lets it answer. Plain completion just continues your text.") == "Chat"
    fallback_slot = st.empty()  # filled once the lab has read the settings
    prompt = st.text_area("Prompt", lab.DEFAULT_PROMPT, key="gen_prompt", max_chars=limits.GENERATION_PROMPT_MAX_CHARS,
                          height=90, help="Try plain completion of the course's example, 今天天气, too.")
    st.caption(limits.prompt_limits_note())

# ---- the settings ---------------------------------------------------------------------------------------------
with right:
    requested = decoding_controls(model_name, prompt, chat)

with st.expander("What the settings do, as formulas"):
    st.markdown("Applied in this order to the scores z (the logits), as in Hugging Face's `generate`:")
    st.latex(r"\text{repetition penalty } \theta:\; z_i \leftarrow \begin{cases} z_i/\theta & z_i>0 \\ "
             r"z_i\,\theta & z_i \le 0\end{cases}\ \text{ for every token already in the text}")
    st.latex(r"\text{temperature: } p_i = \frac{e^{z_i/T}}{\sum_j e^{z_j/T}}")
    st.latex(r"\text{top-}k:\ \text{keep the } k \text{ largest } z_i \qquad "
             r"\text{top-}p:\ \text{keep the smallest set } V_p \text{ with } \sum_{i\in V_p} p_i \ge p")
    st.latex(r"\text{min-}p:\ \text{keep } i \text{ if } p_i \ge \text{min-}p \cdot \max_j p_j")
    st.markdown("The kept probabilities are renormalised and one token is drawn (sampling) or the largest taken "
                "(greedy, which only uses the repetition penalty). The entropy H = −Σ p log₂ p measures how unsure "
                "the model is: 2^H is the number of equally likely tokens it amounts to.")

outcome = lab.run(pm, requested)
if outcome.fallback:
    fallback_slot.warning(escape_markdown(outcome.fallback))
with left:
    if outcome.result is not None:
        with st.expander(f"What the model reads: {len(outcome.result)} tokens "
                         f"(at most {limits.GENERATION_MAX_PROMPT_TOKENS})"):
            st.markdown(token_chips(outcome.result.labels))
    if outcome.error:
        report_invalid(outcome.error)
prompt_ok = outcome.ok
started_with = outcome.settings

# ---- the buttons ----------------------------------------------------------------------------------------------
b1, b2, b3, b4 = st.columns(4)
run_all = b1.button("Generate", type="primary", key="gen_go", disabled=not prompt_ok, width="stretch")
one_more = b2.button("Next token", key="gen_step", disabled=not prompt_ok, width="stretch",
                     help="Step mode: one token per click, with its candidates and attention.")
b3.button("Stop", key="gen_stop", disabled=not run_all, width="stretch",
          help="Stops the text while it is being written.")
if b4.button("Reset", key="gen_reset", width="stretch"):
    state.reset()


def new_run():
    return lab.start_run(pm, outcome)


def mode_caption(run) -> str:
    if run.prompt.chat:
        return "Chat mode: the model answers your message."
    return "Plain completion of: " + escape_markdown(run.prompt.text[:200])


# The text so far lives in the session's run and is drawn here, above everything slow, on every script run: a stop
# at any moment (the page's Stop, Streamlit's own, a new click) leaves it and the controls on the page.
notice = st.empty()
output = st.container(border=True, key="gen_output")
with output:
    heading = st.empty()
    with st.container(key="gen_text"):
        text_slot = st.empty()
    status = st.empty()
if state.run is not None and state.run.steps:  # before any step is computed: a stop during it keeps the text
    heading.caption(mode_caption(state.run))
    text_slot.markdown(text_markdown(state.run.text))

if run_all and prompt_ok:
    with generation_queue().join() as ticket:  # a few runs at a time leave the server room for every other page
        wait_for_turn(ticket, notice)
        run = state.start(new_run(), started_with, stream=True)
        heading.caption(mode_caption(run))
        text_slot.markdown(text_markdown(""))
        for step in run:
            if step.delta:
                text_slot.markdown(text_markdown(run.text))
            tps = lab.summarize(run.steps).tokens_per_second
            status.caption(f"token {step.index + 1} of at most {run.settings.max_new_tokens} · {tps:.1f} tokens/s")
        state.end_stream(run)
elif one_more and prompt_ok:
    run, changed = state.run_to_step(started_with, new_run)
    if changed:
        notice.info("The prompt or the settings changed: a new run starts.")
    next(run, None)

run = state.run
if run is None or not run.steps:
    text_slot.markdown("Press **Generate** to watch the model write, or **Next token** to go one token at a time.")
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
        st.caption(f"Finished after {len(steps)} tokens: {summary.finish}.")
        if summary.cut_character:
            st.caption("The final � is a character cut in half: its first bytes were generated, the rest never was.")
    elif state.stopped or was_interrupted:
        st.warning(f"Stopped after {len(steps)} tokens. **Next token** carries on from here.")
    else:
        st.caption(f"Paused after {len(steps)} tokens (step mode): press **Next token** for one more.")
    if state.started_with != started_with:
        st.caption("This run was made with other settings than the ones shown above.")

m1, m2, m3, m4 = st.columns(4)
m1.metric("Tokens generated", summary.n_tokens)
m2.metric("Tokens per second", f"{summary.tokens_per_second:.1f}",
          help="Measured on this run, after the first token (which also reads the whole prompt).")
m3.metric("First token (ms)", f"{summary.first_token_ms:.0f}", help="Reading the prompt and picking token 1.")
m4.metric("Mean entropy (bits)", f"{summary.mean_entropy_bits:.2f}",
          help="Of the model's own distribution, averaged over the steps.")
st.caption(f"Decoding: {run.settings.describe()}; KV cache {'on' if run.use_cache else 'off'}.")

tab_steps, tab_timeline, tab_speed = st.tabs(["Token by token", "The whole run", "Speed: KV cache on vs off"])

with tab_steps:
    n = len(steps)
    pick = n
    if n > 1:
        pick = st.slider("Token to inspect", 1, n, n, key=f"gen_inspect_{state.number}_{n}",
                         help="The newest token is selected after every step.")
    step = steps[pick - 1]
    st.markdown(f"Token {pick}: **{escape_markdown(quoted(step.label))}** with probability {step.prob:.3f} "
                f"(model alone {step.model_prob:.3f}); {step.n_kept} of the {run.model.cfg.vocab_size} "
                "tokens of the vocabulary were still in play; "
                f"entropy {step.model_entropy:.2f} bits → about {2 ** step.model_entropy:.0f} equally likely choices.")
    col_a, col_b = st.columns([2, 3])
    with col_a:
        chart(candidate_bars(step), key="gen_candidates")
    with col_b:
        labels = run.context_labels(step)
        heads = ["average of the heads"] + [f"head {h}" for h in range(run.model.cfg.n_head)]
        head = st.selectbox("Heads", heads, key=f"gen_head_{run.model.cfg.n_head}")
        head_index = None if head == heads[0] else heads.index(head) - 1
        chart(attention_over_context(step, labels, head=head_index), key="gen_attention")
        st.caption("Each row is one layer: the newest token of the context (its query) against every earlier "
                   "token (their keys). This is the attention that produced the scores for the pick.")
        st.latex(r"a = \mathrm{softmax}\!\left(\frac{q_{t}\,K_{\le t}^\top}{\sqrt{d_k}}\right)")

with tab_timeline:
    generated_labels = run.generated_labels()
    chart(timeline(steps, generated_labels), key="gen_timeline")
    chart(entropy_line(steps, generated_labels), key="gen_entropy")

with tab_speed:
    st.markdown("Without a cache, every step runs the **whole** text through the model again; with a KV cache "
                "each layer keeps the keys and values it already computed, and a step only runs the newest token.")
    st.latex(r"\text{tokens through the model for } n \text{ new tokens after a prompt of } n_0:\quad "
             r"\underbrace{\textstyle\sum_{t=0}^{n-1}(n_0+t)}_{\text{no cache}}\quad\text{vs}\quad "
             r"\underbrace{n_0 + (n-1)}_{\text{KV cache}}")
    n_replay = lab.replay_length(run)
    if len(steps) < 2:
        st.info("Generate at least 2 tokens to compare speeds.")
    elif st.button(f"Time this run with the KV cache on and off (first {n_replay} tokens)", key="gen_measure"):
        with st.spinner("Replaying the run twice…"):
            with generation_queue().join() as ticket:
                wait_for_turn(ticket, notice)
                state.speed = lab.compare_cache(run, n_replay)
    if state.speed:
        s1, s2, s3 = st.columns(3)
        s1.metric("KV cache on (tokens/s)", f"{state.speed.on.tokens_per_second:.1f}")
        s2.metric("KV cache off (tokens/s)", f"{state.speed.off.tokens_per_second:.1f}")
        s3.metric("Speed-up from the cache", f"{state.speed.speedup:.1f}×")
        chart(speed_chart(state.speed, run.generated_labels()), key="gen_speed")
        st.caption("Both replays feed the exact tokens of your run (teacher forcing), so they do the same work. "
                   "The cost of the cache is memory: 2 × layers × kv-heads × d_head numbers per token "
                   f"({run.model.cfg.kv_values_per_token} for this model).")
