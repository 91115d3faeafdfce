"""Generation lab: watch a language model write one token at a time, and every choice it makes on the way."""
import streamlit as st

from explorer import limits
from explorer.generation import FINISH_REASONS, generate, prepare_prompt, replay_speed
from explorer.models.quantization import smollm2_weights
from explorer.sampling import MAX_NEW_TOKENS, SamplingSettings
from explorer.ui.common import chart, page_header, report_invalid
from explorer.ui.generation import (MODEL_CHOICES, MODEL_LABELS, REAL_MODEL, generation_queue, get_generator_model,
                                       lab_state, text_markdown, wait_for_turn)
from explorer.safe_text import escape_markdown
from explorer.ui.token_chips import token_chips
from explorer.viz.generation import (attention_over_context, candidate_bars, entropy_line, quoted, speed_chart,
                                     timeline)

REPLAY_MAX = 48  # tokens timed by the KV-cache comparison: enough to see the trend, quick enough for a class
DEFAULT_PROMPT = "What is the capital of France?"


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
    model_name = st.selectbox("Model", MODEL_CHOICES, format_func=MODEL_LABELS.get, key="gen_model")
    pm = get_generator_model(model_name)
    st.caption(f"{pm.title}. Context window: {pm.config.max_seq_len} tokens.")
    if model_name == REAL_MODEL:
        st.caption(smollm2_weights().note)
    chat = st.radio("Prompt format", ["Chat", "Plain completion"], horizontal=True, key="gen_format",
                    help="Chat wraps your text in the model's chat template, the format it was fine-tuned on, and "
                         "lets it answer. Plain completion just continues your text.") == "Chat"
    if chat and not pm.supports_chat:
        st.warning(f"{model_name} has no chat template (it was never fine-tuned to chat): using plain completion.")
        chat = False
    prompt = st.text_area("Prompt", DEFAULT_PROMPT, key="gen_prompt", max_chars=limits.GENERATION_PROMPT_MAX_CHARS,
                          height=90, help="Try plain completion of the course's example, 今天天气, too.")
    st.caption(limits.prompt_limits_note())

# ---- the settings ---------------------------------------------------------------------------------------------
with right:
    greedy = st.radio("Decoding", ["Sampling", "Greedy"], horizontal=True, key="gen_decoding",
                      help="Greedy always takes the most likely token; sampling draws one at random "
                           "from the probabilities.") == "Greedy"
    temperature = st.slider("Temperature T", 0.05, 2.0, 0.7, 0.05, key="gen_temperature", disabled=greedy)
    c1, c2 = st.columns(2)
    top_k = c1.slider("top-k (0 = off)", 0, 200, 50, key="gen_top_k", disabled=greedy)
    top_p = c2.slider("top-p", 0.05, 1.0, 0.9, 0.05, key="gen_top_p", disabled=greedy)
    min_p = c1.slider("min-p", 0.0, 0.5, 0.0, 0.01, key="gen_min_p", disabled=greedy)
    repetition = c2.slider("Repetition penalty", 0.5, 2.0, 1.0, 0.05, key="gen_repetition")
    max_new = c1.slider("Max new tokens", 1, MAX_NEW_TOKENS, 32, key="gen_max_new")
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed", disabled=greedy,
                           help="The same seed and settings give the same text.")
    use_cache = st.toggle("KV cache", True, key="gen_cache",
                          help="Keep every layer's keys and values so each step only runs the newest token.")

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

try:
    settings = SamplingSettings(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                                repetition_penalty=repetition, max_new_tokens=min(max_new, MAX_NEW_TOKENS),
                                seed=int(seed))
except ValueError as err:
    report_invalid(err)
    st.warning("Using the default settings instead.")
    settings = SamplingSettings()

prompt_ok = True
try:
    prepared = prepare_prompt(pm.tokenizer, prompt, pm.config.max_seq_len, chat=chat)
    cap = limits.GENERATION_MAX_PROMPT_TOKENS
    with left.expander(f"What the model reads: {len(prepared)} tokens (at most {cap})"):
        st.markdown(token_chips(prepared.labels))
    if not use_cache and (too_long := limits.no_cache_too_long(len(prepared), settings.max_new_tokens)):
        raise ValueError(too_long)
except ValueError as err:
    prompt_ok = False
    with left:
        report_invalid(err)
started_with = (model_name, prompt, chat, settings, use_cache)

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
    return generate(pm.model, pm.tokenizer, prepared, settings, use_cache=use_cache, attention=True,
                    stop_ids=pm.eos_token_ids)


def mode_caption(run) -> str:
    if run.prompt.chat:
        return "Chat mode: the model answers your message."
    return "Plain completion of: " + escape_markdown((state.started_with[1] if state.started_with else prompt)[:200])


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
            tps = (step.index + 1) / max(sum(s.seconds for s in run.steps), 1e-9)
            status.caption(f"token {step.index + 1} of at most {settings.max_new_tokens} · {tps:.1f} tokens/s")
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
text = "".join(s.delta for s in steps)
heading.caption(mode_caption(run))
text_slot.markdown(text_markdown(text))
with status.container():
    if steps[-1].finish is not None:
        st.caption(f"Finished after {len(steps)} tokens: {FINISH_REASONS[steps[-1].finish]}.")
        if text.endswith("\ufffd"):
            st.caption("The final � is a character cut in half: its first bytes were generated, the rest never was.")
    elif state.stopped or was_interrupted:
        st.warning(f"Stopped after {len(steps)} tokens. **Next token** carries on from here.")
    else:
        st.caption(f"Paused after {len(steps)} tokens (step mode): press **Next token** for one more.")
    if state.started_with != started_with:
        st.caption("This run was made with other settings than the ones shown above.")

m1, m2, m3, m4 = st.columns(4)
m1.metric("Tokens generated", len(steps))
decode = steps[1:] or steps
m2.metric("Tokens per second", f"{len(decode) / max(sum(s.seconds for s in decode), 1e-9):.1f}",
          help="Measured on this run, after the first token (which also reads the whole prompt).")
m3.metric("First token (ms)", f"{steps[0].seconds * 1000:.0f}", help="Reading the prompt and picking token 1.")
m4.metric("Mean entropy (bits)", f"{sum(s.model_entropy for s in steps) / len(steps):.2f}",
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
    # Without the cache the replay re-reads the text at every step: it keeps within one run's budget.
    n_replay = min(len(steps), REPLAY_MAX, limits.max_new_without_cache(len(run.prompt)))
    if len(steps) < 2:
        st.info("Generate at least 2 tokens to compare speeds.")
    elif st.button(f"Time this run with the KV cache on and off (first {n_replay} tokens)", key="gen_measure"):
        ids = run.token_ids[:n_replay]
        with st.spinner("Replaying the run twice…"):
            with generation_queue().join() as ticket:
                wait_for_turn(ticket, notice)
                state.speed = [replay_speed(run.model, run.prompt.ids, ids, use_cache=c) for c in (True, False)]
    if state.speed:
        on, off = state.speed
        s1, s2, s3 = st.columns(3)
        s1.metric("KV cache on (tokens/s)", f"{on.tokens_per_second:.1f}")
        s2.metric("KV cache off (tokens/s)", f"{off.tokens_per_second:.1f}")
        s3.metric("Speed-up from the cache", f"{on.tokens_per_second / off.tokens_per_second:.1f}×")
        chart(speed_chart(state.speed, run.generated_labels()), key="gen_speed")
        st.caption("Both replays feed the exact tokens of your run (teacher forcing), so they do the same work. "
                   "The cost of the cache is memory: 2 × layers × kv-heads × d_head numbers per token "
                   f"({2 * run.model.cfg.n_layer * run.model.cfg.n_kv_head * run.model.cfg.d_head} for this model).")
