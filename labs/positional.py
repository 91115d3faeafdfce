"""Positional-encoding lab: sinusoidal, learned, RoPE, ALiBi, and why attention needs positions at all."""
import dataclasses

import streamlit as st

from explorer.config import POSITIONALS
from explorer.labs.positional import (
    ENCODING_LABELS, LAB_D_MODEL, LAB_N_HEAD, ROPE_THETAS, SEED_MAX, PositionalResult, PositionalSettings,
)
from explorer.positional_facts import GPT2_POSITION_INIT_STD, GPT2_TOKEN_INIT_STD
from explorer.ui.common import chart, page_header, show_outcome
from explorer.ui.positional import outcome, patterns_for
from explorer.ui.sentence import sentence_input
from explorer.viz.positional import (
    alibi_figure, encodings_figure, permutation_figure, rope_distance_figure, rope_rotation_figure,
    similarity_figure, slopes_figure, table_figure, waves_figure,
)

page_header(
    "Positional encoding lab",
    "Attention compares every token with every other one, but without a mask nothing in softmax(QKᵀ/√d_k)V says "
    "*where* a token is: shuffle the words and each token gets the same attention as before. A positional encoding "
    "puts the order back. Explore the four families the course and today's models use, then see what each does to the "
    "attention of your sentence.",
    "Positional Encoding",
)

tokens = sentence_input()
labels = list(tokens.tokens)

with st.sidebar:
    st.subheader("Positional encodings")
    seed = int(st.number_input("Random seed (weights and embeddings)", 0, SEED_MAX, 0, key="seed"))
    theta = st.select_slider("RoPE base θ", ROPE_THETAS, value=10_000.0, key="theta",
                             format_func=lambda t: f"{t:,.0f}")

# Press et al. 2022, Figure 1: sinusoidal, rotary and T5 models lose perplexity past their training length.
EXTRAPOLATION = ("The formula is defined for every position, but a model trained on short texts does not "
                 "extrapolate to longer ones (Press et al. 2022, Figure 1): the vectors of positions it never saw in "
                 "training are inputs it never learned to read.")

encoding = st.radio("Encoding to explore", POSITIONALS, format_func=ENCODING_LABELS.get, horizontal=True,
                    key="encoding")
requested = PositionalSettings(encoding=encoding, seed=seed, theta=theta)


def section(**controls) -> tuple[PositionalSettings, PositionalResult]:
    """The settings drawn and the explored encoding's section, for the sidebar's controls and this section's;
    the error and the fallback first when the controls could not be used."""
    shown = outcome(tokens, dataclasses.replace(requested, **controls))
    show_outcome(shown)
    return shown.settings, shown.result


if encoding in ("sinusoidal", "learned"):
    c1, c2 = st.columns(2)
    # 64 x 256 cells is as much as a heatmap shows legibly (and sends quickly to 40 browsers)
    n_pos = c1.slider("Positions", 2, 64, 32, key="n_pos")
    d_model = c2.select_slider("d_model", [8, 16, 32, 64, 128, 256], 64, key="pe_d_model")
    used, tables = section(n_pos=n_pos, d_model=d_model)
    sin, pos = tables.sinusoidal, tables.sinusoidal.positions
    st.latex(r"PE_{(pos,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d_{model}}}\right),\quad "
             r"PE_{(pos,2i+1)} = \cos\!\left(\frac{pos}{10000^{2i/d_{model}}}\right)")

if encoding == "sinusoidal":
    st.header("Sinusoidal (the original Transformer)")
    st.markdown("Every dimension pair is a sine/cosine with its own wavelength, from 2π (dimension 0) to "
                "10000·2π: the first dimensions change at every step, the last ones hardly at all. Each position "
                "gets a unique pattern, and PE(p+k) is a rotation of PE(p), so relative offsets are easy to read. "
                + EXTRAPOLATION)
    chart(table_figure(sin.table, pos, title=f"PE table: {used.n_pos} positions × {used.d_model} dimensions"),
          "sin_table")
    width = used.d_model
    dims = st.multiselect("Dimensions to draw as waves", list(range(width)),
                          [d for d in (0, 1, 6, 7, width // 2, width - 2) if d < width], key="dims")
    if dims:
        chart(waves_figure(sin.table, dims, pos), "waves")
    else:
        st.info("Pick at least one dimension to draw.")
    st.markdown("**Similarity of positions.** Near positions look alike, and the similarity depends only on the "
                "distance p − p′ (every diagonal is constant):")
    st.latex(r"PE(p)\cdot PE(p') = \sum_i \cos\!\big((p-p')\,\omega_i\big),\quad \omega_i = 10000^{-2i/d_{model}}")
    chart(similarity_figure(sin.similarity, pos, title="cos(PE(p), PE(p'))"), "sin_sim")

elif encoding == "learned":
    st.header("Learned (GPT, BERT) vs sinusoidal")
    st.markdown("A learned encoding is a table of d_model numbers per position, trained with the model. "
                "Before training it is random noise: GPT-2 drew its position table from a normal distribution with "
                f"σ = {GPT2_POSITION_INIT_STD:g} (its token table with σ = {GPT2_TOKEN_INIT_STD:g}), and so does the "
                "table below. No position is closer to its neighbour than to any other. Training gives it "
                "structure; the sinusoidal table has it from the start. A learned table has no row past its last "
                "trained position; the sinusoidal one does, yet " + EXTRAPOLATION[0].lower() + EXTRAPOLATION[1:])
    st.latex(r"x_{pos} = \mathrm{Embedding}(\text{token}) + P_{pos},\quad P \in \mathbb{R}^{L_{max}\times d_{model}}"
             r"\text{ (learned)}")
    learned = tables.learned
    left, right = st.columns(2)
    with left:
        chart(table_figure(learned.table, pos, title="Learned table (random init)"), "learned_table")
        chart(similarity_figure(learned.similarity, pos, title="cos similarity: learned"), "learned_sim")
    with right:
        chart(table_figure(sin.table, pos, title="Sinusoidal table"), "sin_table")
        chart(similarity_figure(sin.similarity, pos, title="cos similarity: sinusoidal"), "sin_sim")

elif encoding == "rope":
    st.header("RoPE: rotary position embedding (LLaMA, Qwen, Mistral)")
    st.markdown("RoPE adds nothing to the embeddings. It **rotates** each pair of dimensions of q and k by an "
                "angle proportional to the position, so the dot product of a query at m and a key at n depends "
                "only on m − n.")
    st.latex(r"\begin{pmatrix} q'_{i} \\ q'_{i+d/2} \end{pmatrix} = "
             r"\begin{pmatrix} \cos m\theta_i & -\sin m\theta_i \\ \sin m\theta_i & \cos m\theta_i \end{pmatrix}"
             r"\begin{pmatrix} q_{i} \\ q_{i+d/2} \end{pmatrix},\qquad \theta_i = \theta^{-2i/d}")
    st.latex(r"\langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle")
    c1, c2 = st.columns(2)
    d_head = c1.select_slider("d_head", [8, 16, 32, 64, 128], 64, key="rope_d_head")
    pair = c2.slider("Pair i", 0, d_head // 2 - 1, 0, key=f"rope_pair_{d_head}")
    used, result = section(d_head=d_head, pair=pair)
    rope = result.rope
    left, right = st.columns(2)
    with left:
        chart(rope_rotation_figure(rope.rotation, rope.positions), "rope_rot")
        st.caption(f"θ = {used.theta:,.0f}: the pair turns by θ^(−2i/d) radians per position. Low pairs spin fast "
                   "(fine position), high pairs slowly (long range).")
    with right:
        chart(rope_distance_figure({f"θ = {c.theta:,.0f}": c for c in rope.curves}), "rope_dist")
        first = rope.curves[0]
        st.caption(f"Shifting both positions by {first.offset} changes q·k by at most "
                   f"{first.max_offset_change:.1e}: only the distance m − n matters. With q = k = 1 the score is the "
                   "mean of cos((m − n)·θ_i) over the pairs. " + rope.decay.text)

elif encoding == "alibi":
    st.header("ALiBi: attention with linear biases (BLOOM, MPT)")
    st.markdown("ALiBi adds no vector at all: each head subtracts a penalty proportional to the distance "
                "from its scores. Heads with a large slope look only nearby; small slopes see far.")
    st.latex(r"\mathrm{softmax}\!\left(\frac{q_i K^\top}{\sqrt{d_k}} - m_h\,(i - j)\right),\qquad "
             r"m_h = 2^{-8h/n}\ \ (h = 1 \dots n,\ n \text{ a power of two})")
    used, result = section(alibi_heads=st.slider("Heads", 1, 16, 8, key="alibi_heads"))
    ab = result.alibi
    st.caption(ab.rule.text)
    chart(alibi_figure(ab, labels), "alibi")
    chart(slopes_figure(ab), "slopes")

else:
    st.header("No positional encoding: why a bidirectional layer needs positions")
    st.markdown("Without positions and without a mask, attention is **permutation-equivariant**: shuffle the "
                "sentence and every "
                "token gets exactly the same attention as before, just in the new order. “dog bites man” and "
                "“man bites dog” look the same. Put the shuffled sentence's rows and columns back in the original "
                "order and the two heatmaps match to rounding error. Then switch an encoding on and watch it "
                "break.")
    st.caption("This holds for the bidirectional layer shown here (BERT's kind). A causal mask already leaks order: "
               "the token at position i sees exactly i + 1 tokens, so a decoder with no positional encoding at all "
               "(NoPE) still learns where its tokens are (Haviv et al. 2022). Decoders add an encoding to make "
               "positions easy to read, not because they would be blind without one.")
    st.latex(r"\mathrm{Attention}(PX) = P\,\mathrm{Attention}(X)\quad\text{for any permutation matrix } P")
    if len(tokens) < 2:
        st.warning("Shuffling needs at least two tokens: type a longer sentence.")
        used, _ = section()
    else:
        c1, c2, c3 = st.columns(3)
        shuffle_seed = int(c1.number_input("Shuffle (seed)", 0, SEED_MAX, 1, key="shuffle_seed"))
        perm_encoding = c2.selectbox("Now switch on", POSITIONALS, index=POSITIONALS.index("none"),
                                     format_func=ENCODING_LABELS.get, key="perm_encoding")
        head = c3.slider("Head", 1, LAB_N_HEAD, 1, key="perm_head") - 1
        used, result = section(shuffle_seed=shuffle_seed, perm_encoding=perm_encoding)
        res = result.permutation
        st.markdown("**Shuffled:** " + " ".join(f"`{t}`" for t in res.shuffled_labels))
        chart(permutation_figure(res, head), "perm")
        if res.max_abs_diff < 1e-4:
            st.success(f"Same pattern, permuted: the largest difference is {res.max_abs_diff:.1e} (rounding). "
                       "The layer cannot tell the orders apart.")
        else:
            st.warning(f"With {ENCODING_LABELS[used.perm_encoding]} the patterns differ by up to "
                       f"{res.max_abs_diff:.2f}: the layer now knows where each token is.")

# ---- effect on attention --------------------------------------------------------------------------------------
st.header("Effect on attention: the same sentence under each encoding")
st.markdown(f"One bidirectional attention layer (d_model = {LAB_D_MODEL}, {LAB_N_HEAD} heads) with the *same* "
            "random weights and token embeddings; only the positional encoding changes. Sinusoidal and learned add a "
            "vector to X; RoPE rotates q and k; ALiBi biases the scores towards near tokens; with none, equal "
            "tokens get identical rows.")
head_all = st.slider("Head", 1, LAB_N_HEAD, 1, key="effect_head") - 1
patterns = {ENCODING_LABELS[e]: patterns_for(e, used.seed, used.theta, tokens) for e in POSITIONALS}
chart(encodings_figure(patterns, labels, head_all), "effect")
