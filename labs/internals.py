"""Model internals lab: real weights (all-MiniLM-L6-v2, SmolLM2-135M) seen from the inside."""
import streamlit as st

from explorer.labs.internals import (
    DEFAULT_COMPARE, MAX_TOKENS, attention_entropy, head_name, head_view_lines, logit_lens_facts, parse_head_name,
    residual_norm_facts, residual_norms,
)
from explorer.models.quantization import smollm2_weights
from explorer.ui.common import chart, page_header, report_invalid
from explorer.ui.internals import cached_ablation, cached_analysis, cached_lens
from explorer.ui.models import get_model, model_picker
from explorer.ui.token_chips import token_chips
from explorer.viz.internals import (
    ablation_bars, entropy_figure, grid_figure, head_view_figure, logit_lens_figure, pattern_change_figure,
    residual_mean_figure, residual_norm_figure, zoom_figure,
)

DEFAULT_TEXT = {
    "minilm-l6": "The animal didn't cross the street because it was too tired.",
    "smollm2-135m": "The Eiffel Tower is in the city of",
}
FALLBACK_TEXT = "The cat sat on the mat."


page_header(
    "Model internals lab",
    "Two **real, trained** Transformers run inside this app's own code: **all-MiniLM-L6-v2**, a 6-layer BERT "
    "encoder that turns a sentence into one vector, with its published float32 weights, and "
    "**SmolLM2-135M-Instruct**, a 30-layer LLaMA-style decoder that predicts the next token, from its 4-bit "
    "release dequantized to float32 (details under the model picker). "
    "Toy weights show the mechanics; real weights show what attention actually *learns*.",
    "Decoder Only · Encoder · Multi-Head Attention",
)

# ---- model and text ---------------------------------------------------------------------------------------------
name = model_picker("internals_model")
pm = get_model(name)
cfg = pm.config
st.caption(f"**{pm.title}** · d_model = {cfg.d_model}, {cfg.n_head} query heads, {cfg.n_kv_head} key/value heads "
           f"({cfg.attention_kind}), {cfg.norm_position}-{cfg.norm}, {cfg.positional} positions, "
           f"{cfg.activation} FFN")
if name == "smollm2-135m":
    st.caption(smollm2_weights().note)

text = st.text_area("Text", DEFAULT_TEXT[name], key=f"text_{name}", max_chars=2000, height=80)
chat = False
if pm.supports_chat:
    chat = st.toggle("Chat format: wrap the text as a user message in SmolLM2's chat template", False,
                     key="chat_format")
try:
    enc = pm.encode(text, chat=chat, max_tokens=MAX_TOKENS)
except ValueError as err:
    report_invalid(err)
    st.warning(f"Showing the example text instead: “{FALLBACK_TEXT}”")
    text, chat = FALLBACK_TEXT, False
    enc = pm.encode(text, max_tokens=MAX_TOKENS)
if enc.truncated:
    st.warning(f"Your text has {enc.n_original} tokens; this lab shows at most {MAX_TOKENS} "
               f"({cfg.n_layer} layers × {cfg.n_head} heads of {MAX_TOKENS} × {MAX_TOKENS} maps), so it reads only "
               "the beginning" + (" and keeps the final [SEP]." if not pm.is_decoder else "."))
labels = enc.labels
st.markdown("**Tokens:** " + token_chips(labels))
st.caption(f"{len(labels)} tokens (at most {MAX_TOKENS} in this lab).")

run = cached_analysis(name, text, chat)
entropy = attention_entropy(run.patterns, causal=pm.is_decoder)
norm_facts = residual_norm_facts(residual_norms(run), labels, run.patterns) if pm.is_decoder else None
L, H = run.n_layer, run.n_head

tab_grid, tab_view, tab_ablate, tab_lens, tab_resid = st.tabs(
    ["Every head", "Head view", "Head ablation", "Logit lens", "Residual stream & entropy"])

# ---- every head at once -----------------------------------------------------------------------------------------
with tab_grid:
    st.markdown(f"All **{L} layers × {H} heads**. Each small square is one head's attention map: row = the token "
                "that reads (query), column = the token it reads from (key), darker = more weight. Each row sums "
                "to 1. Hover a square for its strongest link; click it (or pick below) to zoom in.")
    st.latex(r"\text{head}_i = \mathrm{softmax}\!\left(\frac{Q W_i^Q (K W_i^K)^\top}{\sqrt{d_k}} + M\right) V W_i^V")
    layer_key, head_key, applied_key = f"zoom_layer_{name}", f"zoom_head_{name}", f"grid_applied_{name}"
    event = st.session_state.get(f"grid_{name}")
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if points and points[0].get("customdata") is not None:
        clicked = tuple(int(v) for v in points[0]["customdata"])
        if st.session_state.get(applied_key) != clicked:  # a new click: move the pickers to it
            st.session_state[applied_key] = clicked
            st.session_state[layer_key], st.session_state[head_key] = clicked
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", list(range(L)), key=layer_key)
    head = c2.selectbox("Head", list(range(H)), key=head_key)
    chart(grid_figure(run.patterns, labels, entropy, selected=(layer, head), causal=pm.is_decoder), f"grid_{name}",
          on_select="rerun",
          selection_mode="points")
    st.subheader(f"Zoom: layer {layer}, head {head}")
    chart(zoom_figure(run.patterns[layer, head], labels, layer, head), f"zoom_{name}")
    if norm_facts is not None and norm_facts.sink_heads:
        st.caption(f"{norm_facts.sink_heads} of {norm_facts.n_heads} heads put more than half of their weight on "
                   f"token {norm_facts.token} ('{norm_facts.label}'), an *attention sink*: with nothing useful to "
                   "read, the softmax still has to put its weight somewhere.")
    else:
        st.caption("BERT heads often attend to [CLS], [SEP] or the neighbouring token; some follow syntax "
                   "(a verb to its subject, a pronoun to its noun).")

# ---- head view --------------------------------------------------------------------------------------------------
with tab_view:
    st.markdown("One layer at a time: every line joins a token (left) to a token it reads from (right). "
                "One colour per head; thicker, darker lines carry more weight. Click a head in the legend to hide it.")
    c1, c2, c3 = st.columns([1, 2, 1])
    view_layer = c1.selectbox("Layer", list(range(L)), key=f"view_layer_{name}", index=min(layer, L - 1))
    view_heads = c2.multiselect("Heads", list(range(H)), default=list(range(min(H, 4))), key=f"view_heads_{name}",
                                format_func=lambda h: f"head {h}")
    min_weight = c3.slider("Hide weights below", 0.0, 0.9, 0.1, 0.05, key=f"view_min_{name}")
    query_choice = st.selectbox("Only the lines of token", ["(all tokens)"] + [f"{i}: {t}" for i, t in
                                                                                enumerate(labels)],
                                key=f"view_query_{name}")
    query = None if query_choice == "(all tokens)" else int(query_choice.split(":", 1)[0])
    if not view_heads:
        st.info("Pick at least one head to draw its lines.")
    else:
        lines = head_view_lines(run.patterns[view_layer], view_heads, min_weight=min_weight, query=query)
        chart(head_view_figure(lines, labels, view_heads, view_layer, min_weight), f"view_{name}")

# ---- ablation -----------------------------------------------------------------------------------------------------
with tab_ablate:
    st.markdown("Switch heads off: their output z is replaced by zeros before W^O mixes the heads, so the rest of "
                "the model runs without them (through `run_with_hooks`). Which heads matter for this text?")
    st.latex(r"\mathrm{MultiHead}(Q,K,V) = \mathrm{Concat}(\text{head}_1, \dots, \underbrace{0}_{\text{head}_i}, "
             r"\dots, \text{head}_h)\,W^O")
    options = [head_name((lay, hd)) for lay in range(L) for hd in range(H)]
    c1, c2 = st.columns([3, 1])
    chosen = c1.multiselect("Heads to zero (L = layer, H = head)", options, key=f"ablate_{name}",
                            placeholder="e.g. L0.H1")
    whole = c2.selectbox("…or a whole layer", ["(none)"] + [f"layer {i}" for i in range(L)],
                         key=f"ablate_layer_{name}")
    heads = [parse_head_name(h) for h in chosen]
    if whole != "(none)":
        heads += [(int(whole.split()[1]), hd) for hd in range(H)]
    compare = DEFAULT_COMPARE
    if not pm.is_decoder:
        compare_text = st.text_area("Comparison sentences (one per line)", "\n".join(DEFAULT_COMPARE),
                                    key="compare_text", height=90)
        compare = tuple(line.strip() for line in compare_text.splitlines() if line.strip())[:8]
        if not compare:
            st.warning("No comparison sentence: showing the default ones.")
            compare = DEFAULT_COMPARE
        st.latex(r"e = \frac{\bar h}{\lVert \bar h \rVert},\quad \bar h = \frac{1}{T}\sum_t h_t,\qquad "
                 r"\cos(e, e') = e \cdot e'")
    else:
        st.latex(r"p(x_{T+1} \mid x_{\le T}) = \mathrm{softmax}(h_T W_U),\qquad "
                 r"\mathrm{KL}(p \,\Vert\, p') = \sum_x p(x) \log \frac{p(x)}{p'(x)}")
    try:
        ab = cached_ablation(name, text, chat, tuple(sorted(set(heads))), tuple(compare))
    except ValueError as err:
        report_invalid(err)
        ab = cached_ablation(name, text, chat, (), tuple(compare))
    if not ab.heads:
        st.info("No head is zeroed yet: pick some above, or a whole layer, and watch the orange bars move.")
    c1, c2 = st.columns([1, 3])
    c1.metric(ab.metric_name, f"{ab.metric:.4f}")
    c2.markdown(ab.summary)
    chart(ablation_bars(ab), f"ablation_bars_{name}")
    st.markdown("**How every head's attention moved** (mean |Δ weight|). The zeroed heads (red frames) keep "
                "their own pattern — only their output is removed — but every later layer now reads a different "
                "residual stream.")
    chart(pattern_change_figure(ab), f"ablation_change_{name}")

# ---- logit lens -------------------------------------------------------------------------------------------------
with tab_lens:
    if not pm.is_decoder:
        st.info("The logit lens reads next-token predictions out of every layer, so it needs a decoder: switch to "
                "SmolLM2 above. (MiniLM ships without any head that maps vectors back to words.)")
    else:
        st.markdown("What would the model predict if it stopped after layer l? Apply the final RMSNorm and the "
                    "unembedding (the tied embedding matrix) to the residual stream there. Each cell shows the top "
                    "next token at that position and layer; colour = its probability. The last row is the real "
                    "prediction.")
        st.latex(r"p_l = \mathrm{softmax}\big(\mathrm{RMSNorm}(h_l)\, W_E^\top\big)")
        with st.spinner("Reading every layer through the unembedding…"):
            lens = cached_lens(name, text, chat)
        chart(logit_lens_figure(lens, labels), f"lens_{name}")
        st.caption(logit_lens_facts(lens, run.ids).text)

# ---- residual stream and entropy --------------------------------------------------------------------------------
with tab_resid:
    st.markdown("**Residual-stream norm.** Each layer *adds* its attention and FFN outputs to the stream that "
                "runs through the model, so its length tells how much has been written into it.")
    if pm.is_decoder:
        st.latex(r"h_{l+1} = h_l + \mathrm{Attn}(\mathrm{RMSNorm}(h_l)) + "
                 r"\mathrm{FFN}(\mathrm{RMSNorm}(h_l + \mathrm{Attn}(\cdot)))")
    else:
        st.latex(r"x' = \mathrm{LayerNorm}(x + \mathrm{Sublayer}(x))")
        st.caption("MiniLM is post-norm (as in the course's Transformer): each sub-layer ends in a LayerNorm, so its "
                   "norms are reset every layer and stay in a narrow band set by the LayerNorm's learned scale γ, "
                   "instead of growing layer after layer as in a pre-norm decoder.")
    norms = residual_norms(run)
    chart(residual_mean_figure(norms, labels), f"resid_line_{name}")
    chart(residual_norm_figure(norms, labels), f"resid_map_{name}")
    if norm_facts is not None:
        st.caption(norm_facts.text)
    st.markdown("**Attention entropy per head.** Low entropy: a sharp head that reads one token. High: a diffuse "
                "head that averages over everything it may see (normalised by the largest possible entropy, the log "
                "of the number of visible keys). Red = sharp, blue = diffuse.")
    st.latex(r"H_i = -\sum_j a_{ij} \log a_{ij},\qquad \tilde H = \frac{1}{|I|}\sum_{i \in I} "
             r"\frac{H_i}{\log n_i},\quad I = \{i : n_i > 1\}")
    st.caption("n_i is the number of keys query i may see. A query that sees a single key (the first token of a "
               "decoder) has no choice to make and is left out of the average.")
    chart(entropy_figure(entropy), f"entropy_{name}")
