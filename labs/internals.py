"""Model internals lab: real weights (all-MiniLM-L6-v2, SmolLM2-135M) seen from the inside."""
import streamlit as st

from explorer.labs.internals import DEFAULT_TEXT, MAX_TOKENS, TEXT_MAX_CHARS, InternalsSettings
from explorer.labs.internals_passes import DEFAULT_COMPARE
from explorer.models.quantization import smollm2_weights
from explorer.ui.common import chart, page_header, show_outcome
from explorer.ui.internals import (
    ablation_picker, compare_box, grid_key, head_view_controls, outcome, query_picker, zoom_pickers,
)
from explorer.ui.models import get_model, model_picker
from explorer.ui.token_chips import token_chips
from explorer.viz.internals import (
    ablation_bars, entropy_figure, grid_figure, head_view_figure, logit_lens_figure, pattern_change_figure,
    residual_mean_figure, residual_norm_figure, zoom_figure,
)

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

text = st.text_area("Text", DEFAULT_TEXT[name], key=f"text_{name}", max_chars=TEXT_MAX_CHARS, height=80)
chat = False
if pm.supports_chat:
    chat = st.toggle("Chat format: wrap the text as a user message in SmolLM2's chat template", False,
                     key="chat_format")
top = st.container()  # the outcome's messages and the tokens, once the controls below are read
L, H = cfg.n_layer, cfg.n_head
tab_grid, tab_view, tab_ablate, tab_lens, tab_resid = st.tabs(
    ["Every head", "Head view", "Head ablation", "Logit lens", "Residual stream & entropy"])

# ---- the controls, tab by tab -----------------------------------------------------------------------------------
with tab_grid:
    st.markdown(f"All **{L} layers × {H} heads**. Each small square is one head's attention map: row = the token "
                "that reads (query), column = the token it reads from (key), darker = more weight. Each row sums "
                "to 1. Hover a square for its strongest link; click it (or pick below) to zoom in.")
    st.latex(r"\text{head}_i = \mathrm{softmax}\!\left(\frac{Q W_i^Q (K W_i^K)^\top}{\sqrt{d_k}} + M\right) V W_i^V")
    layer, head = zoom_pickers(name, L, H)
with tab_view:
    st.markdown("One layer at a time: every line joins a token (left) to a token it reads from (right). "
                "One colour per head; thicker, darker lines carry more weight. Click a head in the legend to hide it.")
    view_layer, view_heads, min_weight = head_view_controls(name, L, H, layer)
with tab_ablate:
    st.markdown("Switch heads off: their output z is replaced by zeros before W^O mixes the heads, so the rest of "
                "the model runs without them (through `run_with_hooks`). Which heads matter for this text?")
    st.latex(r"\mathrm{MultiHead}(Q,K,V) = \mathrm{Concat}(\text{head}_1, \dots, \underbrace{0}_{\text{head}_i}, "
             r"\dots, \text{head}_h)\,W^O")
    ablated = ablation_picker(name, L, H)
    compare = DEFAULT_COMPARE
    if not pm.is_decoder:
        compare = compare_box()
        st.latex(r"e = \frac{\bar h}{\lVert \bar h \rVert},\quad \bar h = \frac{1}{T}\sum_t h_t,\qquad "
                 r"\cos(e, e') = e \cdot e'")
    else:
        st.latex(r"p(x_{T+1} \mid x_{\le T}) = \mathrm{softmax}(h_T W_U),\qquad "
                 r"\mathrm{KL}(p \,\Vert\, p') = \sum_x p(x) \log \frac{p(x)}{p'(x)}")

shown = outcome(pm, InternalsSettings(model=name, text=text, chat=chat, layer=layer, head=head,
                                      view_layer=view_layer, view_heads=view_heads, min_weight=min_weight,
                                      ablated=ablated, compare=compare))
settings, result = shown.settings, shown.result
analysis, labels, norm_facts = result.analysis, result.tokens.labels, result.norm_facts

with top:
    show_outcome(shown)
    if result.tokens.truncated:
        st.warning(f"Your text has {result.tokens.n_original} tokens; this lab shows at most {MAX_TOKENS} "
                   f"({L} layers × {H} heads of {MAX_TOKENS} × {MAX_TOKENS} maps), so it reads only the beginning"
                   + (" and keeps the final [SEP]." if not pm.is_decoder else "."))
    st.markdown("**Tokens:** " + token_chips(labels))
    st.caption(f"{len(labels)} tokens (at most {MAX_TOKENS} in this lab).")

# ---- every head at once -----------------------------------------------------------------------------------------
with tab_grid:
    chart(grid_figure(analysis.patterns, labels, result.entropy, selected=(settings.layer, settings.head),
                      causal=pm.is_decoder), grid_key(name), on_select="rerun", selection_mode="points")
    st.subheader(f"Zoom: layer {settings.layer}, head {settings.head}")
    chart(zoom_figure(analysis.patterns[settings.layer, settings.head], labels, settings.layer, settings.head),
          f"zoom_{name}")
    if norm_facts is not None and norm_facts.sink_heads:
        st.caption(f"{norm_facts.sink_heads} of {norm_facts.n_heads} heads put more than half of their weight on "
                   f"token {norm_facts.token} ('{norm_facts.label}'), an *attention sink*: with nothing useful to "
                   "read, the softmax still has to put its weight somewhere.")
    else:
        st.caption("BERT heads often attend to [CLS], [SEP] or the neighbouring token; some follow syntax "
                   "(a verb to its subject, a pronoun to its noun).")

# ---- head view --------------------------------------------------------------------------------------------------
with tab_view:
    query = query_picker(name, labels)
    if not settings.view_heads:
        st.info("Pick at least one head to draw its lines.")
    else:
        chart(head_view_figure(result.lines, labels, settings.view_heads, settings.view_layer, settings.min_weight,
                               query), f"view_{name}")

# ---- ablation -----------------------------------------------------------------------------------------------------
with tab_ablate:
    ab = result.ablation
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
        chart(logit_lens_figure(result.lens, labels), f"lens_{name}")
        st.caption(result.lens_facts.text)

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
    chart(residual_mean_figure(result.norms, labels), f"resid_line_{name}")
    chart(residual_norm_figure(result.norms, labels), f"resid_map_{name}")
    if norm_facts is not None:
        st.caption(norm_facts.text)
    st.markdown("**Attention entropy per head.** Low entropy: a sharp head that reads one token. High: a diffuse "
                "head that averages over everything it may see (normalised by the largest possible entropy, the log "
                "of the number of visible keys). Red = sharp, blue = diffuse.")
    st.latex(r"H_i = -\sum_j a_{ij} \log a_{ij},\qquad \tilde H = \frac{1}{|I|}\sum_{i \in I} "
             r"\frac{H_i}{\log n_i},\quad I = \{i : n_i > 1\}")
    st.caption("n_i is the number of keys query i may see. A query that sees a single key (the first token of a "
               "decoder) has no choice to make and is left out of the average.")
    chart(entropy_figure(result.entropy), f"entropy_{name}")
