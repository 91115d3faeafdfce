"""Attention lab: a sentence through one multi-head attention layer, step by step and head by head."""
import pandas as pd
import streamlit as st

from explorer.ui.attention import outcome, params, sidebar_settings, study
from explorer.ui.common import chart, page_header, show_outcome
from explorer.ui.sentence import sentence_input
from explorer.viz.attention import (
    MAX_SHOWN_COLS, head_grid, matrix_figure, params_figure, shared_bound, sqrt_dk_figure, vectors_grid,
)

page_header(
    "Attention lab",
    "Type a sentence and follow it through **one multi-head attention layer**: every token's vector X is "
    "projected to queries, keys and values, each query scores every key, the mask hides what must not be seen, "
    "the softmax turns scores into weights, and the weighted values of all heads are concatenated and mixed by "
    "W^O. The weights are random (no training), so the patterns show the *mechanics*, not meaning.",
    "Attention 机制 · Multi-Head Attention (MHA) · Masked attention",
)

# ---- controls -------------------------------------------------------------------------------------------------
tokens = sentence_input()

shown = outcome(tokens, sidebar_settings())
show_outcome(shown)
settings, result = shown.settings, shown.result
labels = result.tokens
n_head, d_head, kind = result.n_head, result.d_head, result.kind
st.info(f"**{kind}**: d_model = {settings.d_model}, {n_head} heads of d_k = d_v = {d_head} "
        f"(d_model / n_head), {result.n_kv_head} key/value head(s); X = token embedding + sinusoidal position.")

# ---- all heads -------------------------------------------------------------------------------------------------
st.header("All heads side by side")
st.latex(r"\mathrm{head}_i = \mathrm{softmax}\!\left(\frac{Q_iK_i^\top}{\sqrt{d_k}} + M\right)V_i")
zoom = st.select_slider("Zoom into head", options=list(range(1, n_head + 1)), key=f"zoom_{n_head}") \
    if n_head > 1 else 1
h = zoom - 1
kv = result.kv_head(h)
chart(head_grid(result.weights, labels, kv_heads=[result.kv_head(i) for i in range(n_head)], selected=h,
                title=f"Attention weights of all {n_head} heads (rows: queries, columns: keys)"), "grid")

# ---- step by step ------------------------------------------------------------------------------------------------
st.header(f"Step by step, head {zoom}")


def step(title: str, formulas: list[str], note: str, fig, key: str) -> None:
    left, right = st.columns([2, 3], vertical_alignment="center")
    with left:
        st.subheader(title)
        for formula in formulas:
            st.latex(formula)
        st.markdown(note)
    with right:
        chart(fig, key)


def cut_note(width: int) -> str:
    return f" Showing the first {MAX_SHOWN_COLS} of {width} columns." if width > MAX_SHOWN_COLS else ""


dims = lambda n: [f"d{i}" for i in range(n)]  # noqa: E731
step("1 · Input X", [r"X = \mathrm{Embedding}(\text{tokens}) + PE", r"X \in \mathbb{R}^{n \times d_{model}}"],
     f"One row per token, {settings.d_model} numbers each." + cut_note(settings.d_model),
     matrix_figure(result.X, dims(settings.d_model), labels, title="X", kind="vectors", x_title="dimension",
                   y_title="token"), "X")
qkv_note = "" if kind == "MHA" else f" Head {zoom} reads key/value head {kv + 1}, shared with other query heads ({kind})."
step("2 · Queries, keys, values",
     [r"Q_i = X W_i^Q,\quad K_i = X W_i^K,\quad V_i = X W_i^V",
      r"W_i^Q, W_i^K \in \mathbb{R}^{d_{model} \times d_k},\quad W_i^V \in \mathbb{R}^{d_{model} \times d_v}"],
     f"{d_head} numbers per token and head." + qkv_note + cut_note(d_head),
     vectors_grid([result.Q[h], result.K[kv], result.V[kv]], labels,
                  [f"Q (head {zoom})", f"K (kv head {kv + 1})", f"V (kv head {kv + 1})"]), "QKV")
# Steps 3, 4 and 6 share one colour scale: on scales of their own, Q Kᵀ and Q Kᵀ / √d_k looked identical.
score_bound = shared_bound(result.QK[h], result.scaled[h])
step("3 · Scores QKᵀ", [r"S = Q_i K_i^\top"], "How well each query matches each key: a dot product.",
     matrix_figure(result.QK[h], labels, labels, title="Q Kᵀ", bound=score_bound), "QK")
if settings.scale:
    scaled_note = (f"Divided by √{d_head} = {d_head ** 0.5:.2f} so the spread does not grow with d_k (see below). "
                   "Same colour scale as step 3: every score is that many times closer to 0, so paler.")
else:
    scaled_note = "**Scaling is off**: the scores go into the softmax as they are."
step("4 · Scale", [r"\frac{QK^\top}{\sqrt{d_k}}"], scaled_note,
     matrix_figure(result.scaled[h], labels, labels, title="scaled scores" if settings.scale else "scores",
                   bound=score_bound), "scaled")
mask_formula = {
    "none": r"M_{i,j} = 0 \text{ for every } i, j",
    "causal": r"M_{i,j} = \begin{cases} 0, & j \le i \\ -\infty, & j > i \end{cases}",
    "padding": r"M_{i,j} = \begin{cases} 0, & \text{token } j \text{ is real} \\ -\infty, & "
               r"\text{token } j \text{ is [PAD]} \end{cases}",
    "sliding_window": r"M_{i,j} = \begin{cases} 0, & i - w < j \le i \\ -\infty, & \text{otherwise} \end{cases}",
    "prefix": r"M_{i,j} = \begin{cases} 0, & j \le i \text{ or } j < p \\ -\infty, & \text{otherwise} \end{cases}",
}[settings.mask]
mask_note = {
    "none": "Nothing is hidden: every token sees the whole sentence (an encoder).",
    "causal": "Upper triangle is -∞: a token never sees the tokens after it (GPT).",
    "padding": f"{settings.pad_len} [PAD] token(s) fill the sentence to a batch's length; no query may read them.",
    "sliding_window": f"Each token sees only itself and the {settings.window - 1} before it (w = {settings.window}).",
    "prefix": f"The first {settings.prefix_len} token(s) see each other in both directions; the rest is causal.",
}[settings.mask]
step("5 · Mask M", [mask_formula], mask_note + " Grey cells are -∞.",
     matrix_figure(result.M, labels, labels, title="M", kind="mask"), "M")
step("6 · Add the mask", [r"\frac{QK^\top}{\sqrt{d_k}} + M"], "Masked scores are -∞ (grey): e^{-∞} = 0.",
     matrix_figure(result.masked[h], labels, labels, title="scores + M", bound=score_bound), "masked")
step("7 · Softmax", [r"A_{i,j} = \frac{e^{s_{i,j}}}{\sum_{j'} e^{s_{i,j'}}}"],
     "Each row becomes weights that add up to 1; masked keys get exactly 0.",
     matrix_figure(result.weights[h], labels, labels, title=f"attention weights (head {zoom})", kind="weights"),
     "softmax")
step("8 · Weights × V", [r"\mathrm{head}_i = A\,V_i"], "Each token's output is a weighted average of the values."
     + cut_note(d_head),
     matrix_figure(result.Z[h], dims(d_head), labels, title=f"head {zoom} output", kind="vectors",
                   x_title="dimension", y_title="token"), "Z")
step("9 · Concatenate the heads", [r"\mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)"],
     f"{n_head} heads × {d_head} = {n_head * d_head} columns." + cut_note(n_head * d_head),
     matrix_figure(result.concat, [f"h{i // d_head + 1}.{i % d_head}" for i in range(n_head * d_head)], labels,
                   title="concat", kind="vectors", x_title="head.dimension", y_title="token"), "concat")
step("10 · Output projection W^O",
     [r"\mathrm{MultiHead} = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\,W^O",
      r"W^O \in \mathbb{R}^{h d_v \times d_{model}}"],
     f"Back to d_model = {settings.d_model} per token: this goes on to the residual stream and the FFN. Head "
     f"{zoom} alone contributes head_{zoom} W^O (its rows of W^O)." + cut_note(settings.d_model),
     matrix_figure(result.output, dims(settings.d_model), labels, title="attention output", kind="vectors",
                   x_title="dimension", y_title="token"), "out")

# ---- why sqrt(d_k) -------------------------------------------------------------------------------------------------
st.header("Why divide by √d_k?")
st.markdown(
    "If the entries of q and k are independent, zero-mean and of variance 1, their dot product has variance d_k "
    "(Vaswani et al. 2017, footnote 4): the wider the heads, the larger the scores. Below, this sentence's X is "
    "projected to Q and K of growing width (8 random heads each). **Without scaling** the softmax saturates: "
    "almost all weight on one key (entropy near 0, tiny gradients). **With** ÷√d_k the distribution keeps its "
    "shape. The stars are this layer's own heads."
)
st.latex(r"q_i, k_i \text{ independent, mean } 0, \text{ variance } 1:\quad "
         r"\operatorname{Var}(q \cdot k) = d_k \;\Rightarrow\; "
         r"\operatorname{Var}\!\left(\frac{q \cdot k}{\sqrt{d_k}}\right) = 1")
chart(sqrt_dk_figure(study(tokens, settings), result.sharpness), "sqrt_dk")

# ---- parameters ----------------------------------------------------------------------------------------------------
st.header("Parameters and KV cache: MHA vs GQA vs MQA")
rows = params(settings.d_model, n_head, result.n_kv_head)
st.latex(r"\underbrace{d_{model}\cdot h d_k}_{W^Q} + \underbrace{2\, d_{model}\cdot n_{kv} d_k}_{W^K,\,W^V} + "
         r"\underbrace{h d_v \cdot d_{model}}_{W^O} \;(+\text{biases}),\qquad "
         r"\text{KV cache per token per layer} = 2 \cdot n_{kv} \cdot d_k \cdot \text{bytes}")
left, right = st.columns([3, 2])
with left:
    st.dataframe(pd.DataFrame([{
        "kind": r.kind, "n_kv_head": r.n_kv_head, "W^Q": r.w_q, "W^K": r.w_k, "W^V": r.w_v, "W^O": r.w_o,
        "total": r.total, "KV cache / token (fp16)": f"{r.kv_cache_bytes_per_token(2):,} B",
        "this layer": "◀" if r.n_kv_head == result.n_kv_head else "",
    } for r in rows]), hide_index=True)
    st.caption("GQA and MQA shrink only W^K and W^V, but the KV cache, which grows with every generated token "
               "(and every layer), shrinks by n_head / n_kv_head. fp32 doubles the bytes.")
with right:
    chart(params_figure(rows), "params")
